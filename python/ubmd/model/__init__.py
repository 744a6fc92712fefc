"""The MLIP: a Gaussian-moment descriptor (:mod:`.descriptor`) and a per-species scaled MLP
readout (:mod:`.mlip`); trained members on disk (:mod:`.members`)."""

from .descriptor import GaussianMoments
from .members import load_members, new_model, save_members
from .mlip import MLIP, Linear

__all__ = ["GaussianMoments", "Linear", "MLIP", "load_members", "new_model", "save_members"]
