"""``ubmd select``: pick a batch of candidate structures, from structures and a trained run, or
from a pool's feature matrix.

Examples::

    ubmd select candidates.extxyz --model runs/model -b 8 -m max_det --write-selected next.extxyz
    ubmd select pool.npy --train train.npy -b 8 -m max_det --seed 0 -o selected.json

With ``--model RUN_DIR`` (a directory written by ``ubmd train``) the pool and ``--train`` are
structure files (anything ASE reads: ``candidates.extxyz`` of ``ubmd md`` or of AL walkers) and
the features are the run's, as in an AL round (:mod:`ubmd.selection.pool`): ``max_det``/``max_diag`` on
posterior-transformed features (the model file's transform, or one fitted on ``--train``),
``max_dist``/``lcmd`` against ``--train`` (default: the run's own training data),
``ensemble`` models on member deviations. ``--write-selected`` writes the picked structures.

Without ``--model`` the inputs are ``[n, K]`` feature matrices in ``.npy``, ``.npz`` or ``.pt`` files. An ``.npz`` (or a
``.pt`` holding a dict) with several arrays needs ``--key``; without it the single array, or the
one named ``structure_features`` / ``features``, is used. The selected pool indices are printed
on stdout (space-separated, in selection order) and, with ``-o``, written to a JSON file together
with the settings. See :mod:`ubmd.selection` for the methods and which features they expect.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ubmd import keys
from ubmd.selection import METHODS, select_batch

from . import INPUT_ERRORS, fail

DEFAULT_KEYS = (keys.STRUCTURE_FEATURES, keys.FEATURES)


def load_features(path: str | Path, key: str | None = None) -> torch.Tensor:
    """Load a 2-D feature matrix from ``.npy``, ``.npz`` or ``.pt``; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return torch.as_tensor(np.load(path, allow_pickle=False))
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            table = {name: archive[name] for name in archive.files}
        return torch.as_tensor(_pick(table, key, path))
    if suffix in (".pt", ".pth"):
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            obj = _pick(obj, key, path)
        if isinstance(obj, np.ndarray):
            obj = torch.as_tensor(obj)
        if not isinstance(obj, torch.Tensor):
            raise ValueError(f"{path}: expected a tensor or a dict of tensors, got {type(obj).__name__}")
        return obj
    raise ValueError(f"{path}: unsupported feature file type {suffix!r}; use .npy, .npz or .pt")


def _pick(table: dict, key: str | None, path: Path):
    if key is not None:
        if key not in table:
            raise ValueError(f"{path}: no array named {key!r}; available: {', '.join(table)}")
        return table[key]
    if len(table) == 1:
        return next(iter(table.values()))
    for name in DEFAULT_KEYS:
        if name in table:
            return table[name]
    raise ValueError(
        f"{path} holds several arrays ({', '.join(table)}); choose one with --key / --train-key"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ubmd select",
        description="Select a diverse batch of pool indices from feature matrices.",
    )
    p.add_argument("pool", help="candidate structures (with --model), or pool features "
                   "[n_pool, K] (.npy, .npz or .pt)")
    p.add_argument("--train", help="labelled structures (with --model; default: the run's "
                   "training data), or training features [n_train, K]; omit for none")
    p.add_argument("--model", metavar="RUN_DIR", help="a run directory of `ubmd train` (or an "
                   "AL round's directory): select from structures with its features")
    p.add_argument("--write-selected", metavar="FILE", help="with --model: write the selected "
                   "structures (in selection order) to this file, e.g. next.extxyz")
    p.add_argument("-b", "--batch-size", type=int, default=8, help="number of picks (default 8)")
    p.add_argument(
        "-m", "--method", choices=METHODS, default="max_det", help="selection method (default max_det)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random picks (default 0)")
    p.add_argument("--key", help="array name inside a pool .npz / .pt dict")
    p.add_argument("--train-key", help="array name inside a training .npz / .pt dict")
    p.add_argument(
        "--dtype", choices=("float32", "float64"), help="compute in this precision (default: input's)"
    )
    p.add_argument("-o", "--output", help="write the selection (and settings) to this JSON file")
    return p


def main(args: list[str] | None = None) -> int:
    """Run ``ubmd select``; returns the exit status (0 ok, 2 bad input)."""
    ns = build_parser().parse_args(args)
    if ns.model:
        return _select_structures(ns)
    if ns.write_selected:
        return fail("select", ValueError("--write-selected needs --model (structure input)"))
    try:
        pool = load_features(ns.pool, ns.key)
        train = load_features(ns.train, ns.train_key) if ns.train else None
        if ns.dtype:
            dtype = getattr(torch, ns.dtype)
            pool = pool.to(dtype)
            train = train.to(dtype) if train is not None else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idx = select_batch(pool, train, ns.batch_size, ns.method, seed=ns.seed)
    except (OSError,) + INPUT_ERRORS as err:
        return fail("select", err)
    for w in caught:
        print(f"ubmd select: warning: {w.message}", file=sys.stderr)
    _report(ns, idx, n_pool=int(pool.shape[0]),
            n_train=int(train.shape[0]) if train is not None else 0,
            feature_dim=int(pool.shape[1]) if pool.dim() == 2 else None)
    return 0


def _report(ns, idx, **record) -> list[int]:
    """Print the indices; with ``-o`` write them and the settings as JSON."""
    indices = [int(i) for i in idx]
    print(" ".join(str(i) for i in indices))
    if ns.output:
        record = {"method": ns.method, "batch_size": ns.batch_size, "seed": ns.seed,
                  "pool": str(ns.pool), "train": str(ns.train) if ns.train else None,
                  **record, "indices": indices}
        out = Path(ns.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"ubmd select: wrote {len(indices)} indices to {out}", file=sys.stderr)
    return indices


def _select_structures(ns) -> int:
    """``--model`` mode: features of the run's model on structure files (see the docstring)."""
    from ase.io import write

    from ..data import read_structure_files, read_structures
    from ..io import RunFiles
    from ..model_file import read_metadata
    from ..selection.pool import select
    from ..training.runs import load_run_config

    try:
        cfg = load_run_config(ns.model)
        pool = read_structures(ns.pool)
        train = read_structures(ns.train) if ns.train else (
            read_structure_files(cfg.data.train, what="data.train") if cfg.data.train else None)
        if train is None:
            raise ValueError(f"{ns.model}: its config names no training data; give --train")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idx = select(pool, ns.model, ns.batch_size, ns.method, train=train, seed=ns.seed)
    except (OSError,) + INPUT_ERRORS as err:
        return fail("select", err)
    for w in caught:
        print(f"ubmd select: warning: {w.message}", file=sys.stderr)
    indices = _report(ns, idx, model=str(ns.model), n_pool=len(pool), n_train=len(train),
                      uncertainty=read_metadata(RunFiles(cfg.output).model)["uncertainty"])
    if ns.write_selected:
        out = Path(ns.write_selected)
        out.parent.mkdir(parents=True, exist_ok=True)
        write(str(out), [pool[i] for i in indices])
        print(f"ubmd select: wrote {len(indices)} structures to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
