"""Ensemble uncertainty from the members' force disagreement (evaluation / stopping criterion).

For an ensemble of M members with forces F_i^(m):
    u_i = c_at * sqrt( (1/M) sum_m |F_i^(m) - mean_m F_i^(m)|^2 / 3 )      (eV/Å, per atom)
    u   = c    * sqrt( (1/N) sum_i (1/M) sum_m |F_i^(m) - mean F_i|^2 / 3 )  (eV/Å, structure)
It needs one backward pass per member and is not a sum of per-atom features, so it is not used
for the MPI bias (which biases the energy-variance form, see :mod:`ubmd.uncertainty.heads`); it is the
force-based alternative of the paper for ranking, calibration and stopping in Python.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from .. import keys as K
from ..data import atoms_to_graph, collate
from ..prediction import predict


def member_forces(members, atoms: Atoms) -> np.ndarray:
    """Forces [M, N, 3] (eV/Å) of every member (eager MLIPs or a FeatureModel's members)."""
    smap = {int(z): k for k, z in enumerate(members[0].atomic_numbers)}
    batch = collate([atoms_to_graph(atoms, members[0].cutoff, smap, members[0].desc_mean.dtype)])
    return np.stack([predict(m, batch, forces=True, virial=False)[K.FORCES].detach().double().numpy()
                     for m in members])


def force_variance_uncertainty(members, atoms: Atoms, calib_total: float = 1.0,
                               calib_atomic: float = 1.0) -> tuple[float, np.ndarray]:
    """(u, u_i): calibrated structure and per-atom force-disagreement uncertainties (eV/Å)."""
    if len(members) < 2:
        raise ValueError("force-variance uncertainty needs an ensemble of at least 2 members")
    f = member_forces(members, atoms)
    dev2 = ((f - f.mean(0, keepdims=True)) ** 2).sum(-1).mean(0) / 3.0  # [N]
    return calib_total * float(np.sqrt(dev2.mean())), calib_atomic * np.sqrt(dev2)
