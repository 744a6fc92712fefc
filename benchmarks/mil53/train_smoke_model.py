"""A tiny ubmd model for MIL-53(Al), only to exercise the benchmark scripts (not a benchmark result).

Training frames: the GFN1-xTB relaxation trajectories written by ``benchmarks.mil53.relax_start_structures``
(runs/mil53/relax_*.traj, every frame carries energy, forces and stress), optionally plus the
labelled test set. Small architecture, few epochs, one torch thread, float32 training, float64
export (``model.pt`` usable by ``pair_style ubmd`` and ``benchmarks.mil53.metadynamics_baseline``).

Usage: nice -n 5 python -m benchmarks.mil53.train_smoke_model [--work runs/mil53] [--epochs 60]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ase.io import read

from ubmd.config import TrainRunConfig, from_dict
from ubmd.training import train_from_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/mil53")
    ap.add_argument("--out", default="runs/mil53/smoke_model")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--max-time", type=float, default=300.0, help="s per model")
    ap.add_argument("--weight-virial", type=float, default=0.5,
                    help="virial loss weight (NPT needs a usable stress)")
    ap.add_argument("--extra", nargs="*", default=[], help="more labelled extxyz files")
    args = ap.parse_args()
    frames = []
    for traj in sorted(Path(args.work).glob("relax_*.traj")):
        frames += read(traj, ":")
    for path in args.extra:
        frames += read(path, ":")
    frames = [a for a in frames if a.calc is not None and "stress" in a.calc.results]
    print(f"{len(frames)} training frames", flush=True)
    cfg = from_dict(TrainRunConfig, {
        "model": {"cutoff": 4.5, "n_radial": 6, "n_basis": 8, "hidden": [32, 32]},
        "training": {"max_epochs": args.epochs, "batch_size": 4, "lr": 5e-3, "dtype": "float32",
                     "patience": 30, "progress": False, "max_time_s": args.max_time,
                     "weight_virial": args.weight_virial},
        "uncertainty": {"kind": "posterior", "features": "last_layer"},
        "data": {"valid_fraction": 0.2}, "output": args.out})
    summary = train_from_config(cfg, frames)
    print(json.dumps({k: summary[k] for k in ("n_train", "n_valid", "train_time_s", "model_file")
                      if k in summary}), flush=True)
    print("valid errors:", json.dumps(summary.get("errors_valid")), flush=True)


if __name__ == "__main__":
    main()
