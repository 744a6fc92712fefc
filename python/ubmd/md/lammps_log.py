"""Reading a walker's LAMMPS log: the thermo columns of its runs and the ``fix halt`` messages
(:func:`parse_thermo`, after the run), and the last thermo row of a growing log
(:func:`last_thermo_row`, the heartbeat while it runs)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def parse_thermo(log_path: Path, all_halts: bool = False):
    """Thermo columns of the runs in a LAMMPS log (consecutive runs joined; a row whose step is
    not past the previous row's, a run's setup row after a reflection, is left out), and
    ``{"step", "value", "fix"}`` of the last ``fix halt`` message (None if none fired; no thermo
    row is printed for that step); with ``all_halts`` the list of every one, in log order (two
    fixes may fire on the same step)."""
    cols: dict[str, list] = {}
    names: list[str] | None = None
    halts = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("Fix halt condition"):
            words = line.split()
            halts.append({"step": int(words[words.index("step") + 1]),
                          "value": float(words[words.index("value") + 1]),
                          "fix": words[words.index("fix-id") + 1] if "fix-id" in words else None})
            continue
        words = line.split()
        if words[:1] == ["Step"]:
            if cols and list(cols) != words:
                raise ValueError(f"{log_path}: runs with different thermo columns")
            names = words
            cols = cols or {n: [] for n in names}
            continue
        if names is None:
            continue
        if line.startswith("Loop time"):
            names = None
            continue
        if len(words) == len(names):
            try:
                values = [float(w) for w in words]
            except ValueError:
                continue
            if cols[names[0]] and values[0] <= cols[names[0]][-1]:
                continue
            for n, v in zip(names, values):
                cols[n].append(v)
    thermo = {k: np.asarray(v) for k, v in cols.items()}
    if all_halts:
        return thermo, halts
    return thermo, (halts[-1] if halts else None)



def last_thermo_row(log_path: Path, n_columns: int) -> list[float] | None:
    """The last complete thermo row (``n_columns`` numbers) at the end of a growing log."""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            lines = fh.read().decode(errors="replace").splitlines()[:-1]  # last may be partial
    except OSError:
        return None
    for line in reversed(lines):
        words = line.split()
        if len(words) == n_columns:
            try:
                return [float(w) for w in words]
            except ValueError:
                continue
    return None
