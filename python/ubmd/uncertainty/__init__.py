"""Uncertainty of a trained model: gradient features (:mod:`.features`), the fitted heads that turn
them into u and du/dphi (:mod:`.heads`), fitting and calibration on the splits (:mod:`.fit`,
:mod:`.calibration`), calibration metrics and plots (:mod:`.metrics`, :mod:`.plots`) and the
ensemble force-disagreement alternative (:mod:`.ensemble_forces`).

The package exports the core names; the plots (matplotlib) are in :mod:`.plots`.
"""

from .calibration import Calibration, fit_calibration
from .features import FeatureModel
from .fit import build_feature_model, calibrate, fit_head, raw_uncertainties
from .heads import UncertaintyHead, feature_scale, posterior_transform

__all__ = ["Calibration", "FeatureModel", "UncertaintyHead", "build_feature_model", "calibrate",
           "feature_scale", "fit_calibration", "fit_head", "posterior_transform",
           "raw_uncertainties"]
