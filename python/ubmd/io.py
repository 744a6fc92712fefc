"""Crash-safe files: every write goes to a temporary file that is renamed over the target.

A reader therefore sees either the old or the new content, never half a file, whatever kills the
writer (the campaign's resume relies on it). Frames are extxyz (an empty file holds no frame),
JSON keeps numpy scalars and arrays, ``.npz`` archives hold float arrays.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from .data.structures import read_structures, write_structures


def _tmp(path: Path, suffix: str = ".tmp") -> Path:
    return path.with_name(path.name + suffix)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json_atomic(data, path: str | Path) -> None:
    """``data`` as indented JSON at ``path`` (numpy scalars and arrays allowed)."""
    path = Path(path)
    tmp = _tmp(path)
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, default=_json_default)
    os.replace(tmp, path)


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def write_frames_atomic(frames: Sequence[Atoms], path: str | Path) -> None:
    """Structures as extxyz (labels of attached calculators kept); no frames: an empty file."""
    path = Path(path)
    tmp = _tmp(path)
    if frames:
        write_structures(tmp, list(frames))
    else:
        tmp.write_text("")
    os.replace(tmp, path)


def read_frames(path: str | Path) -> list[Atoms]:
    """Frames written by :func:`write_frames_atomic`; a missing or empty file holds none."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    return read_structures(path)


def save_npz_atomic(arrays: dict, path: str | Path) -> None:
    """Float arrays in an ``.npz`` archive."""
    path = Path(path)
    tmp = _tmp(path, ".tmp.npz")
    np.savez(tmp, **{k: np.asarray(v, dtype=float) for k, v in arrays.items()})
    os.replace(tmp, path)


class RunFiles:
    """The files of a training run directory (``ubmd train``, an AL round's ``train/``): the one
    place their names are spelled. ``config.yaml`` the resolved config, ``members.pt`` the trained
    members (float64), ``model.pt`` the model file, ``calibration.json``, ``history.json``
    (learning curves), ``errors.json`` (errors and calibration metrics)."""

    CONFIG, MEMBERS, MODEL = "config.yaml", "members.pt", "model.pt"
    CALIBRATION, HISTORY, ERRORS = "calibration.json", "history.json", "errors.json"

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    def __repr__(self) -> str:
        return f"RunFiles({str(self.dir)!r})"

    config = property(lambda self: self.dir / self.CONFIG)
    members = property(lambda self: self.dir / self.MEMBERS)
    model = property(lambda self: self.dir / self.MODEL)
    calibration = property(lambda self: self.dir / self.CALIBRATION)
    history = property(lambda self: self.dir / self.HISTORY)
    errors = property(lambda self: self.dir / self.ERRORS)
