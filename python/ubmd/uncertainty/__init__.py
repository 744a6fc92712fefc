"""Uncertainty of a trained model: gradient features (:mod:`.features`), the fitted heads that turn
them into u and du/dphi (:mod:`.heads`), fitting and calibration on the splits (:mod:`.fit`,
:mod:`.calibration`), calibration metrics and plots (:mod:`.metrics`, :mod:`.plots`) and the
ensemble force-disagreement alternative (:mod:`.ensemble_forces`).

Import from the submodules; this package file imports nothing heavy (plots need matplotlib).
"""
