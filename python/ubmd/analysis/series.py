"""CV time series of one walker output file (log or structures), for the analyses and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cvs import evaluate_frames, parse_cv
from .readers import COLUMN_FORMATS, detect_format, read_frames, read_thermo_log, read_walker_trace

_TIME_KEYS = ("timestep", "step", "Step", "time")


@dataclass
class Series:
    """CV values of one file: ``values[cv.spec]`` per frame/row; ``time`` in ``time_unit``."""

    path: str
    time: np.ndarray
    time_unit: str  # "step" (MD steps) or "frame" (index)
    values: dict[str, np.ndarray] = field(default_factory=dict)


def load_series(
    path: str | Path, cvs, fmt: str | None = None, atoms_per_fu: int | None = None, n_fu: int | None = None
) -> Series:
    """Evaluate CVs (``CV`` objects or spec strings) on every frame or thermo row of ``path``.

    Thermo columns (``log:NAME``) need a LAMMPS log; every other CV needs a structure file. The
    time axis is the ``Step`` column / dump timestep / extxyz ``step`` info when present, else
    the frame index.
    """
    cvs = [parse_cv(c) if isinstance(c, str) else c for c in cvs]
    if not cvs:
        raise ValueError("no CV given")
    fmt = fmt or detect_format(path)
    sources = {cv.source for cv in cvs}
    if fmt in COLUMN_FORMATS:
        what = "LAMMPS thermo log" if fmt == "lammps-log" else "walker trace (trace.npz)"
        if sources != {"log"}:
            bad = [cv.spec for cv in cvs if cv.source != "log"]
            raise ValueError(
                f"{path} is a {what}: it holds only columns (log:NAME); CVs "
                f"{bad} need a structure file (dump, extxyz or traj)"
            )
        log = read_thermo_log(path) if fmt == "lammps-log" else read_walker_trace(path)
        values = {cv.spec: log.get(cv.name) for cv in cvs}
        for key in ("Step", "step"):
            if key in log.columns:
                return Series(str(path), log.columns[key], "step", values)
        return Series(str(path), np.arange(len(log), dtype=float), "frame", values)
    if "log" in sources:
        raise ValueError(
            f"{path} is a structure file ({fmt}); thermo-log CVs "
            f"{[cv.spec for cv in cvs if cv.source == 'log']} need the walker's LAMMPS log"
        )
    frames, extras = read_frames(path, fmt)
    values = {cv.spec: evaluate_frames(cv, frames, extras, atoms_per_fu, n_fu) for cv in cvs}
    for key in _TIME_KEYS:
        if extras and all(key in e and np.ndim(e[key]) == 0 for e in extras):
            return Series(str(path), np.array([float(e[key]) for e in extras]), "step", values)
    return Series(str(path), np.arange(len(frames), dtype=float), "frame", values)
