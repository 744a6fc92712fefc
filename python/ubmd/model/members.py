"""Trained members on disk (``members.pt``): state dicts with their constructor arguments, float64.

Not a model file (that is :mod:`ubmd.model_file`, what LAMMPS reads): ``members.pt`` is what a
training run keeps to re-export, re-calibrate or warm-start from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .mlip import MLIP
from .repulsion import DEFAULT_RANGE


def architecture(m: MLIP) -> dict:
    """The constructor arguments of ``m`` (what rebuilds it)."""
    return {"atomic_numbers": list(m.atomic_numbers), "cutoff": float(m.cutoff),
            "n_radial": m.descriptor.n_radial, "n_basis": m.descriptor.n_basis,
            "hidden": [layer.d_out for layer in m.layers][:-1],
            "repulsion": bool(m.use_repulsion), "repulsion_range": float(m.repulsion.range_factor)}


def new_model(species_map: dict[int, int], model_cfg, seed: int, dtype: torch.dtype) -> MLIP:
    """An untrained model for the species of ``species_map`` (atomic number -> model index; the
    model's species ordered by index) with the architecture of a ``ModelConfig``."""
    zs = sorted(species_map, key=lambda z: species_map[z])
    return MLIP(zs, model_cfg.cutoff, model_cfg.n_radial, model_cfg.n_basis,
                list(model_cfg.hidden), seed=seed, repulsion=model_cfg.repulsion,
                repulsion_range=model_cfg.repulsion_range).to(dtype)


def matches(members: Sequence[MLIP], species_map: dict[int, int], model_cfg, n_models: int) -> bool:
    """Whether ``members`` have the species and architecture a new training with ``model_cfg``
    would build (so that they can warm-start it)."""
    m = members[0]
    want = {"atomic_numbers": sorted(species_map, key=species_map.get),
            "cutoff": float(model_cfg.cutoff), "n_radial": model_cfg.n_radial,
            "n_basis": model_cfg.n_basis, "hidden": list(model_cfg.hidden),
            "repulsion": bool(model_cfg.repulsion),
            "repulsion_range": float(model_cfg.repulsion_range)}
    have = architecture(m)
    return (len(members) == n_models and abs(have.pop("cutoff") - want.pop("cutoff")) < 1e-12
            and have == want)


def save_members(members: Sequence[MLIP], path: str | Path) -> None:
    """Write the members (float64 state dicts + architecture) atomically."""
    path = Path(path)
    blob = [{**architecture(m),
             "state_dict": {k: v.double() if torch.is_floating_point(v) else v
                            for k, v in m.state_dict().items()}} for m in members]
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def load_members(path: str | Path, dtype=torch.float64) -> list[MLIP]:
    """The members saved by :func:`save_members`, in ``dtype``, in eval mode."""
    blob = torch.load(str(path), map_location="cpu", weights_only=False)
    out = []
    for b in blob:
        # members saved before the baseline existed have none
        m = MLIP(b["atomic_numbers"], b["cutoff"], b["n_radial"], b["n_basis"], b["hidden"],
                 repulsion=b.get("repulsion", False),
                 repulsion_range=b.get("repulsion_range", DEFAULT_RANGE))
        m.load_state_dict(b["state_dict"])
        out.append(m.to(dtype).eval())
    return out
