"""Features of a candidate pool and batch selection with a trained run's model (an AL round's,
or any ``ubmd train`` run; the paper's method (docs/method.md)).

Which features each selection method sees (``ubmd.selection`` uses a linear kernel on them):

* ``max_diag``/``max_det``: posterior-transformed features phi~ = T phi (T = the model file's
  ``head.transform``, so <phi~, phi~'> is the posterior covariance given the training split).
  For ``distance`` uncertainties the same transform is fitted here from the training split.
* ``max_dist``/``lcmd``: scaled raw features a phi, against the features of every labelled
  structure of the dataset (train + validation), so picks are far from all paid-for labels.
* ``ensemble`` uncertainty (all methods): member deviations (E_m - mean_m E) / N per structure.
* ``random``: the features only give the pool size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms

from ..data import GraphDataset
from ..io import RunFiles
from ..model import load_members
from ..model_file.load import load_model_file
from ..uncertainty.fit import build_feature_model, dataset_features
from ..uncertainty.heads import posterior_transform
from .methods import select_batch


class RunFeatures:
    """The feature map and fitted uncertainty head of a trained run directory (``members.pt`` +
    ``model.pt``, e.g. an AL round's ``train/``)."""

    def __init__(self, train_dir: str | Path, train_cfg):
        train_dir = Path(train_dir)
        members = load_members(RunFiles(train_dir).members)
        self.fm = build_feature_model(members, train_cfg.uncertainty)
        module, self.meta = load_model_file(RunFiles(train_dir).model)
        head = module.head
        self.kind = str(head.kind)
        self.scale = float(head.scale)
        self.transform = head.transform.detach().double().clone()
        self.cutoff = float(members[0].cutoff)
        self.species_map = {int(z): k for k, z in enumerate(members[0].atomic_numbers)}

    def features(self, frames: Sequence[Atoms]) -> dict:
        """Structure features [n, K] (float64) and atom counts [n] of ``frames``."""
        if not frames:
            return {"phi": torch.zeros(0, self.fm.dim, dtype=torch.float64),
                    "n_atoms": torch.zeros(0, dtype=torch.long)}
        data = GraphDataset(frames, self.cutoff, self.species_map, dtype=torch.float64)
        f = dataset_features(self.fm, data, with_forces=False)
        return {"phi": f["phi"].double(), "n_atoms": f["n_atoms"]}


def selection_features(model: RunFeatures, method: str, pool: dict, train: dict, train_split: dict):
    """(pool_features, train_features) for :func:`ubmd.selection.select_batch` (module docstring)."""
    if model.kind == "ensemble":
        def dev(f):
            phi = f["phi"]
            return (phi - phi.mean(1, keepdim=True)) / f["n_atoms"].double().unsqueeze(1)
        return dev(pool), dev(train)
    if method in ("max_dist", "lcmd"):
        return pool["phi"] * model.scale, train["phi"] * model.scale
    if method in ("max_diag", "max_det"):
        t = model.transform if model.kind == "posterior" and model.transform.numel() else \
            posterior_transform(train_split["phi"], model.scale)
        return pool["phi"] @ t.T, None
    return pool["phi"], None


def select_from_pool(model: RunFeatures, pool_frames: Sequence[Atoms], dataset: Sequence[Atoms],
                     train_frames: Sequence[Atoms], method: str, batch_size: int,
                     seed: int = 0) -> np.ndarray:
    """Indices (selection order) of ``batch_size`` pool frames to label next."""
    pool = model.features(pool_frames)
    need_train = method in ("max_dist", "lcmd") or model.kind == "ensemble"
    need_split = method in ("max_diag", "max_det") and not (
        model.kind == "posterior" and model.transform.numel())
    train = model.features(dataset) if need_train else {"phi": None, "n_atoms": None}
    split = model.features(train_frames) if need_split else None
    x, t = selection_features(model, method, pool, train, split)
    idx = select_batch(x, t, int(batch_size), method, seed=seed)
    return idx.numpy()


def select(pool, run: str | Path, batch_size: int = 8, method: str = "max_det",
           train=None, seed: int = 0) -> list[int]:
    """Pick ``batch_size`` structures of ``pool`` to label next, with the features of a
    trained run, as an AL round does (``ubmd select --model``).

    Args:
        pool: candidate structures (ASE Atoms, or a file ASE reads: a walker's
            ``candidates.extxyz``, a campaign round's ``pool.extxyz``).
        run: a run directory of ``ubmd train`` / :func:`ubmd.train`, or an AL round's.
        batch_size: how many to pick.
        method: ``max_det`` (default), ``max_diag``, ``max_dist``, ``lcmd`` or ``random``
            (:mod:`ubmd.selection.methods`).
        train: the labelled structures the picks should differ from (frames or a file;
            default: the run's own training data).
        seed: seed of ``random``.

    Returns the indices into ``pool``, in selection order."""
    from ..data import read_structure_files, read_structures
    from ..training.runs import load_run_config

    cfg = load_run_config(run)
    pool = read_structures(pool) if isinstance(pool, (str, Path)) else list(pool)
    if not pool:
        raise ValueError("the pool holds no structures")
    if train is None:
        if not cfg.data.train:
            raise ValueError(f"{run}: its config names no training data; give train=...")
        train = read_structure_files(cfg.data.train, what="data.train")
    elif isinstance(train, (str, Path)):
        train = read_structures(train)
    model = RunFeatures(Path(cfg.output), cfg)
    idx = select_from_pool(model, pool, train, train, method, batch_size, seed=seed)
    return [int(i) for i in idx]
