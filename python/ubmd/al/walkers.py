"""What every MD walker gets and leaves behind, whatever the engine (ASE or LAMMPS).

A walker runs (biased) MD from one start structure with the round's model file and stops once
the largest calibrated atomic uncertainty exceeds ``threshold`` (eV/Å), after ``max_steps``, or
after ``max_time_s``. It writes into its own directory:

* ``candidates.extxyz``: a frame every ``sample_every`` steps plus the frame that triggered the
  stop; ``info``: ``walker``, ``step``, ``time_fs``, ``uncertainty`` (eV/atom),
  ``max_atomic_uncertainty`` (eV/Å), ``trigger`` (True for the triggering frame); per-atom array
  ``atomic_uncertainty``;
* ``trace.npz``: every ``log_every`` steps ``step``, ``time_fs``, ``uncertainty``,
  ``max_atomic_uncertainty``, ``energy`` (unbiased potential energy, eV), ``temperature`` (K),
  ``volume`` (Å^3, NaN without a cell), and ``cvs`` [n, 2] (degrees) when dihedrals are given;
* ``summary.json`` (written last, atomically: its presence marks the walker as finished).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from ase import Atoms

from ..data import write_structures

CANDIDATES = "candidates.extxyz"
TRACE = "trace.npz"
SUMMARY = "summary.json"
STOP_THRESHOLD = "threshold"
STOP_MAX_STEPS = "max_steps"
STOP_TIME = "time_limit"
STOP_ERROR = "error"


@dataclass
class WalkerTask:
    """One walker's job; picklable, so it can travel to a process pool or a Dask worker."""

    index: int
    engine: str  # ase | lammps
    model_file: str
    start: Atoms
    workdir: str
    temperature: float  # K
    pressure: float  # bar (npt only)
    seed: int
    params: Any  # ubmd.al.config.WalkerConfig
    dihedrals: Optional[list] = None  # two lists of 4 atom indices
    species: list = field(default_factory=list)  # model element order (LAMMPS pair_coeff)


def write_json_atomic(data, path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_candidates(frames: list[Atoms], path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if frames:
        write_structures(tmp, frames)
    else:
        tmp.write_text("")
    os.replace(tmp, path)


def read_candidates(path: str | Path) -> list[Atoms]:
    """Frames written by :func:`write_candidates` (an empty file holds none)."""
    from ..data import read_structures

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    return read_structures(path)


def save_trace(trace: dict, path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{k: np.asarray(v, dtype=float) for k, v in trace.items()})
    os.replace(tmp, path)


def dihedral_values(atoms: Atoms, dihedrals) -> list[float]:
    """Dihedral angles (degrees, in [-180, 180)) of the given index quadruples."""
    out = []
    for idx in dihedrals:
        a = atoms.get_dihedral(*idx, mic=bool(np.any(atoms.pbc)))
        out.append(((a + 180.0) % 360.0) - 180.0)
    return out


def run_walker(task: WalkerTask) -> dict:
    """Run one walker with its engine; never raises: a failure is reported in the summary."""
    t0 = time.perf_counter()
    Path(task.workdir).mkdir(parents=True, exist_ok=True)
    try:
        if task.engine == "ase":
            from .walkers_ase import run_ase_walker as run
        elif task.engine == "lammps":
            from .walkers_lammps import run_lammps_walker as run
        else:
            raise ValueError(f"unknown walker engine {task.engine!r}")
        summary = run(task)
    except Exception as exc:  # noqa: BLE001 - a failed walker must not end the campaign
        summary = {"index": task.index, "engine": task.engine, "stop_reason": STOP_ERROR,
                   "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                   "n_steps": 0, "n_candidates": 0}
    summary["wall_s"] = time.perf_counter() - t0
    summary.setdefault("temperature_K", task.temperature)
    summary.setdefault("pressure_bar", task.pressure)
    write_json_atomic(summary, Path(task.workdir) / SUMMARY)
    return summary


def task_summary_path(task: WalkerTask) -> Path:
    return Path(task.workdir) / SUMMARY
