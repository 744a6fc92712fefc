"""What every MD walker (one MD run) gets and leaves behind, whatever the engine (ASE or LAMMPS).

A walker runs (biased) MD from one start structure with the round's model file and stops once
the largest calibrated atomic uncertainty exceeds ``threshold`` (eV/Å), once its kinetic
temperature exceeds the runaway level (:func:`runaway_temperature`: ``runaway_factor`` x the
target temperature), after ``max_steps``, or after ``max_time_s``. It writes into its own
directory:

* ``candidates.extxyz``: a frame every ``sample_every`` steps plus the frame that triggered the
  stop; ``info``: ``walker``, ``step``, ``time_fs``, ``uncertainty`` (eV/atom),
  ``max_atomic_uncertainty`` (eV/Å), ``temperature`` (K, kinetic), ``trigger`` (True for the
  frame that stopped the walker, by the threshold or the runaway guard), ``runaway`` (True for
  the frame the runaway guard stopped at); per-atom array ``atomic_uncertainty``;
* ``progress.json``: a heartbeat while it runs (step, max_steps, temperature, max u_i;
  :class:`ubmd.progress.Heartbeat`), read by the campaign's progress display;
* ``trace.npz``: every ``log_every`` steps ``step``, ``time_fs``, ``uncertainty``,
  ``max_atomic_uncertainty``, ``energy`` (unbiased potential energy, eV), ``temperature`` (K),
  ``volume`` (Å^3, NaN without a cell), and ``cvs`` [n, 2] (degrees) when dihedrals are given;
* ``summary.json`` (written last, atomically: its presence marks the walker as finished).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from ase import Atoms

from .settings import MDSettings

CANDIDATES = "candidates.extxyz"
TRACE = "trace.npz"
SUMMARY = "summary.json"
STOP_THRESHOLD = "threshold"
STOP_MAX_STEPS = "max_steps"
STOP_TIME = "time_limit"
STOP_ERROR = "error"
STOP_RUNAWAY = "runaway"
PROGRESS = "progress.json"

#: per-step probability with which the thermal fluctuations of an unbiased walker's kinetic
#: temperature may reach the runaway level (small systems: see :func:`runaway_temperature`)
RUNAWAY_FLUCTUATION_P = 1e-4
#: the runaway level is this much higher during a walker's first steps (:func:`runaway_grace_steps`)
RUNAWAY_GRACE_FACTOR = 1.5


def runaway_temperature(target: float, n_dof: int, factor: float | None) -> float:
    """The kinetic temperature (K) above which a walker at ``target`` K stops as a runaway:
    ``factor`` x ``target``, or, where that is higher, the level that the equilibrium
    fluctuations of the kinetic temperature reach with probability
    :data:`RUNAWAY_FLUCTUATION_P` per step (``n_dof`` kinetic degrees of freedom: 2 T_kin /
    T is chi-squared; 3N - 3 for N atoms with the momentum removed). With the default factor
    1.5 the fluctuation level decides below about 60 atoms (1.80 x for 22 atoms, 2.6 x for 8);
    an unbiased walker then reaches it about once in 4 x 10^4 steps (steps are correlated).
    ``factor`` None: no guard (infinity)."""
    if factor is None:
        return math.inf
    from scipy.stats import chi2

    n_dof = max(1, int(n_dof))
    return float(target) * max(float(factor), float(chi2.isf(RUNAWAY_FLUCTUATION_P, n_dof))
                               / n_dof)


def runaway_grace_steps(p: MDSettings) -> int:
    """The first steps of a walker during which the runaway level is RUNAWAY_GRACE_FACTOR x
    higher: ``runaway_grace``, for a biased walker at most its bias window W (the bias is off
    during the window, so the grace never weakens the guard against a bias-driven runaway)."""
    biased = p.tau_forces > 0 or p.tau_stress > 0
    return int(min(p.runaway_grace, p.window) if biased else p.runaway_grace)


@dataclass
class WalkerTask:
    """One walker's job; picklable, so it can travel to a worker process or a Dask worker."""

    index: int
    engine: str  # a name of ubmd.md.engines.ENGINES (ase | lammps)
    model_file: str
    start: Atoms
    workdir: str
    temperature: float  # K
    pressure: float  # bar (npt only)
    seed: int
    params: MDSettings  # (an AL campaign passes its WalkerConfig, which extends MDSettings)
    dihedrals: Optional[list] = None  # two lists of 4 atom indices
    species: list = field(default_factory=list)  # model element order (LAMMPS pair_coeff)

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"walker {self.index}: temperature must be > 0 K, got "
                             f"{self.temperature}")


def dihedral_values(atoms: Atoms, dihedrals) -> list[float]:
    """Dihedral angles (degrees, in [-180, 180)) of the given index quadruples."""
    out = []
    for idx in dihedrals:
        a = atoms.get_dihedral(*idx, mic=bool(np.any(atoms.pbc)))
        out.append(((a + 180.0) % 360.0) - 180.0)
    return out


def error_summary(task: WalkerTask, error: str, traceback: str | None = None, **extra) -> dict:
    """The summary of a walker that failed (``stop_reason: error``)."""
    out = {"index": task.index, "engine": task.engine, "stop_reason": STOP_ERROR,
           "error": error, "n_steps": 0, "n_candidates": 0, **extra}
    if traceback:
        out["traceback"] = traceback
    return out
