"""``ubmd export RUN_DIR -o model.pt``: (re-)export a trained run as a model file.

Re-fits the uncertainty state on the run's training split and re-calibrates on its validation
split (deterministic), so the dtype, the uncertainty kind or the feature kind can be changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..config import TrainRunConfig, from_dict, load_yaml


def export_run(run_dir: str | Path, output: str | Path, dtype: str = "float64",
               uncertainty: str | None = None, features: str | None = None) -> dict:
    from ..data import GraphDataset, species_map_from, split_indices
    from ..export import ExportedModel, export_model
    from ..train import torch_dtype
    from ..uncertainty_fit import calibrate, fit_head
    from ..workflow import build_feature_model, load_frames, load_members

    run_dir = Path(run_dir)
    if not (run_dir / "members.pt").exists():
        raise FileNotFoundError(f"{run_dir} has no members.pt: train first with `ubmd train`")
    cfg = from_dict(TrainRunConfig, load_yaml(run_dir / "config.yaml"))
    if uncertainty:
        cfg.uncertainty.kind = uncertainty
    if features:
        cfg.uncertainty.features = features
    members = load_members(run_dir / "members.pt")
    fm = build_feature_model(members, cfg)
    head = None
    if cfg.uncertainty.kind != "none":
        frames = load_frames(cfg.data.train)
        zs = members[0].atomic_numbers
        data = GraphDataset(frames, cfg.model.cutoff, {z: k for k, z in enumerate(zs)})
        split = split_indices(len(data), cfg.data.valid_fraction, cfg.data.test_fraction,
                              cfg.data.split_seed)
        head = fit_head(fm, data.subset(split.train), cfg.uncertainty)
        calibrate(fm, head, data.subset(split.valid), cfg.uncertainty)
    return export_model(ExportedModel(fm, head), output, torch_dtype(dtype))


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog="ubmd export", description=__doc__)
    p.add_argument("run_dir", help="directory written by `ubmd train`")
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.pt)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--uncertainty", choices=["none", "posterior", "distance", "ensemble"])
    p.add_argument("--features", choices=["last_layer", "sketch"])
    a = p.parse_args(args)
    meta = export_run(a.run_dir, a.output, a.dtype, a.uncertainty, a.features)
    print(f"wrote {a.output}: species {meta['species']}, cutoff {meta['cutoff']} Å, "
          f"uncertainty {meta['uncertainty']}, dtype {meta['dtype']}")
    return 0
