"""Reference labels ("DFT" step of the active-learning loop) with any ASE calculator.

* :func:`make_calculator` builds an ASE calculator from a picklable spec (built-ins: GFN2-xTB,
  GFN1-xTB, IPEA1-xTB through tblite; EMT, Lennard-Jones, Morse from ASE; or any class by import
  path);
* :func:`label_structures` labels many structures concurrently in separate processes, recording
  (not raising) failed, crashed or timed-out jobs;
* :func:`filter_by_max_force` drops labels with unphysically large forces (> 20 eV/Å by default);
* :func:`label_checkpointed` / :func:`collect_labels` (:mod:`.checkpoint`): every label on disk
  the moment it arrives, so an interrupted labelling never pays for a label twice.

Units: eV, Å, eV/Å, eV/Å^3 (ASE conventions).
"""

from .calculators import BUILTINS, check_structure, make_calculator, normalise_spec, spec_label
from .checkpoint import collect_labels, label_checkpointed, read_failure
from .settings import ReferenceConfig
from .runner import (
    LABEL_METHOD,
    LABEL_TIME,
    POOL_INDEX,
    JobOutcome,
    LabelFailure,
    LabelResult,
    filter_by_max_force,
    label_one,
    label_structures,
)

__all__ = [
    "BUILTINS",
    "LABEL_METHOD",
    "LABEL_TIME",
    "POOL_INDEX",
    "JobOutcome",
    "LabelFailure",
    "LabelResult",
    "ReferenceConfig",
    "check_structure",
    "collect_labels",
    "filter_by_max_force",
    "label_checkpointed",
    "label_one",
    "label_structures",
    "make_calculator",
    "normalise_spec",
    "read_failure",
    "spec_label",
]
