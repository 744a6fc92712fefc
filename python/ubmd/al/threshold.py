"""The stop threshold of one round's walkers: absolute, or relative to the model's own level.

``walkers.threshold`` (eV/Å) is the paper's absolute rule: a walker stops once any calibrated
atomic uncertainty exceeds it. It presumes a model whose calibrated atomic uncertainty on its own
training data lies well below the threshold. An early or deliberately small model (a large cell,
a short training budget) can sit at or above it on the structures it was trained on, and then
every walker stops within a few steps and the round adds one frame per walker.

``walkers.threshold_relative: k`` scales the threshold to the model: the round's threshold is

    max(threshold, k * m),   m = median over the round's labelled structures of max_i u_i,

with ``u_i`` the calibrated atomic uncertainties (eV/Å) of the round's model. The absolute value
stays a floor, so once the model is as good as the paper's the paper's rule applies. ``m`` is
measured on at most ``MAX_STRUCTURES`` labelled structures (a seeded draw), in the model file's
own precision, and written to ``walkers/threshold.json`` so that a resumed round uses the same
threshold.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from ..io import write_json_atomic

MAX_STRUCTURES = 64
FILE = "threshold.json"


def max_atomic_uncertainties(model_file: str | Path, frames: Sequence[Atoms]) -> np.ndarray:
    """The largest calibrated atomic uncertainty (eV/Å) of each structure under the model."""
    from ..calculator import UBMDCalculator

    calc = UBMDCalculator(model_file, uncertainty="atomic")
    out = []
    for atoms in frames:
        b = atoms.copy()
        b.calc = calc
        b.get_potential_energy()
        out.append(float(np.max(calc.results["atomic_uncertainty"])))
    return np.asarray(out)


def round_threshold(params, model_file: str | Path, frames, seed: int = 0) -> dict:
    """The round's threshold record: ``threshold`` (eV/Å, what the walkers use) and how it arose.

    ``frames``: the labelled structures, or a callable returning them (read only when needed).
    """
    rec = {"threshold": float(params.threshold), "absolute": float(params.threshold),
           "relative": params.threshold_relative}
    if params.threshold_relative is None:
        return rec
    frames = frames() if callable(frames) else frames
    if not frames:
        raise ValueError("walkers.threshold_relative needs labelled structures to measure the "
                         "model's uncertainty level on; the round has none")
    idx = np.arange(len(frames))
    if len(idx) > MAX_STRUCTURES:
        idx = np.sort(np.random.default_rng(seed).choice(idx, MAX_STRUCTURES, replace=False))
    umax = max_atomic_uncertainties(model_file, [frames[i] for i in idx])
    if not np.isfinite(umax).all():
        raise ValueError(f"the model in {model_file} gives non-finite atomic uncertainties on "
                         f"{int((~np.isfinite(umax)).sum())} labelled structure(s): cannot set a "
                         "relative threshold")
    level = float(np.median(umax))
    rec.update(reference_level=level, n_structures=int(len(idx)),
               reference_quartiles=[float(np.quantile(umax, 0.25)), float(np.quantile(umax, 0.75))],
               threshold=max(float(params.threshold), float(params.threshold_relative) * level))
    return rec


def walker_params(params, record: dict):
    """A copy of the walker settings with the round's threshold in place of the configured one."""
    return dataclasses.replace(params, threshold=float(record["threshold"]))


def load_or_compute(walker_dir: Path, params, model_file, frames, seed: int = 0) -> tuple[dict, bool]:
    """``(record, fresh)``: the record in ``walker_dir/threshold.json``, or, on the first call
    and when ``threshold`` or ``threshold_relative`` changed before a resume, a new one (written
    there; ``fresh`` is True). Walkers that finished under an older record must then rerun."""
    path = Path(walker_dir) / FILE
    if path.exists():
        with open(path) as fh:
            rec = json.load(fh)
        if (rec.get("absolute") == float(params.threshold)
                and rec.get("relative") == params.threshold_relative):
            return rec, False
    rec = round_threshold(params, model_file, frames, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(rec, path)
    return rec, True
