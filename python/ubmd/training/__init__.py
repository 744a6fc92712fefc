"""Training: the loss (:mod:`.loss`), one model (:mod:`.trainer`), an ensemble (:mod:`.ensemble`),
the whole train -> fit uncertainty -> calibrate -> export pipeline of ``ubmd train``
(:mod:`.pipeline`) and run directories (:mod:`.runs`: re-export, re-calibrate)."""

from .pipeline import train_from_config
from .runs import export_run, load_run_config

__all__ = ["export_run", "load_run_config", "train_from_config"]
