"""Evaluate models on labelled structures.

* :func:`evaluate_model_file` (:mod:`.predictions`): a model file frame by frame through the
  ASE calculator (what MD runs): errors, uncertainty quality, per-structure predictions, parity
  and calibration plots (``ubmd evaluate``);
* :func:`score_members` (:mod:`.scoring`): a run's trained members on a test set, batched in
  float64, overall and per group of frames, optionally checked against the run's model file;
  built on :func:`predict_members` and :func:`error_table`;
* :func:`plot_parity` (:mod:`.plots`).

Units: ``evaluate_model_file``: energies per atom in eV/atom, forces in eV/Å, stresses in eV/Å^3
(and GPa: ``*_GPa``), stated in its ``units`` entry; ``score_members``/``error_table``: meV/atom
(``*_meV_atom``), eV/Å, GPa (``*_GPa``).
"""

from .plots import plot_parity
from .predictions import EXPLAIN, UNITS, evaluate_model_file, explain, prediction_frames
from .scoring import error_table, predict_members, score_members

__all__ = ["EXPLAIN", "UNITS", "error_table", "evaluate_model_file", "explain", "plot_parity",
           "predict_members", "prediction_frames", "score_members"]
