"""Does the bias push MD to higher uncertainty? Biased vs unbiased ASE MD from the same start.

Alanine dipeptide (GFN2-xTB data, NVT Langevin 300 K, tau_F = 0.25, w_H = 0) and MIL-53(Al)
(GFN1-xTB data, NPT with full cell freedom at 300 K, tau_F = tau_sigma = 0.25): a small model is
trained on the bundled data, then `ubmd md` runs unbiased and biased trajectories with the same
seed; the mean total uncertainty over each trajectory (and for MIL-53 the volume range) is
reported. Prints a table, writes benchmarks/results/bias_exploration_ase.json.

    python -m benchmarks.bias_exploration_ase [--steps 400] [--train-minutes 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ubmd.cli.md import main as md_main
from ubmd.config import TrainRunConfig, from_dict
from ubmd.data import read_structures, write_structures
from ubmd.training import train_from_config

from . import RESULTS, ROOT


def train(frames, out: Path, cutoff: float, minutes: float, seed: int) -> Path:
    cfg = from_dict(TrainRunConfig, {
        "model": {"cutoff": cutoff, "n_radial": 6, "n_basis": 10, "hidden": [64, 64]},
        "training": {"max_epochs": 500, "batch_size": 4, "lr": 5e-3, "lr_final": 1e-4,
                     "dtype": "float32", "max_time_s": 60 * minutes, "seed": seed,
                     "weight_virial": 0.01},
        "uncertainty": {"kind": "posterior", "features": "last_layer"},
        "data": {"valid_fraction": 0.2, "split_seed": seed},
        "export_dtype": "float32",
        "output": str(out),
    })
    summary = train_from_config(cfg, frames)
    print(f"  model {out.name}: valid {summary['errors_valid']}")
    return out / "model.pt"


def run_pair(model: Path, start: Path, out: Path, args: list[str]) -> dict:
    res = {}
    for label in ("unbiased", "biased"):
        extra = list(args) if label == "unbiased" else list(args) + bias_args[out.name]
        d = out / label
        md_main([str(model), str(start), "--out", str(d)] + extra)
        tr = np.load(d / "trace.npz")
        u = tr["uncertainty"] if "uncertainty" in tr else tr["u"]
        row = {"mean_u": float(np.nanmean(u)), "max_u": float(np.nanmax(u)),
               "n_records": int(len(u))}
        if "volume" in tr and np.isfinite(tr["volume"]).any():
            v = tr["volume"]
            row.update(volume_min=float(np.nanmin(v)), volume_max=float(np.nanmax(v)))
        res[label] = row
    return res


bias_args: dict[str, list[str]] = {}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--train-minutes", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs" / "bias_exploration"))
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    t0 = time.perf_counter()
    # alanine dipeptide: trained on 300 K frames only, NVT at 300 K
    ala = read_structures(ROOT / "examples/ala2/data/ala2_gfn2_300K.extxyz")[:200]
    write_structures(out / "ala2_start.extxyz", [ala[0]])
    model = train(ala, out / "ala2_model", 5.0, a.train_minutes, a.seed)
    common = ["--ensemble", "nvt", "--temperature", "300", "--timestep", "0.5",
              "--steps", str(a.steps), "--log-every", "5", "--seed", str(a.seed)]
    bias_args["ala2"] = ["--tau-forces", "0.25", "--window", "50", "--weights", "H=0"]
    results["ala2_nvt_300K"] = run_pair(model, out / "ala2_start.extxyz", out / "ala2", common)
    # MIL-53(Al): trained on the GFN1-xTB test set spanning both pore states, NPT at 300 K
    mil = read_structures(ROOT / "examples/mil53/data/mil53_test_gfn1.extxyz")
    mil += read_structures(ROOT / "examples/mil53/data/mil53_lp_gfn1_2x1x1.extxyz")
    start = read_structures(ROOT / "examples/mil53/data/mil53_lp_gfn1_2x1x1.extxyz")[-1]
    write_structures(out / "mil53_start.extxyz", [start])
    model = train(mil, out / "mil53_model", 5.0, a.train_minutes, a.seed)
    common = ["--ensemble", "npt", "--temperature", "300", "--pressure", "0", "--timestep", "0.5",
              "--steps", str(a.steps), "--log-every", "5", "--seed", str(a.seed)]
    bias_args["mil53"] = ["--tau-forces", "0.25", "--tau-stress", "0.25", "--window", "50"]
    results["mil53_npt_300K"] = run_pair(model, out / "mil53_start.extxyz", out / "mil53", common)
    results["wall_s"] = time.perf_counter() - t0
    print(f"\n{'system':18s} {'run':9s} {'mean u (eV/atom)':>17s} {'max u':>10s} {'V range (Å^3)':>20s}")
    for key in ("ala2_nvt_300K", "mil53_npt_300K"):
        for label, row in results[key].items():
            vr = (f"{row['volume_min']:.0f}-{row['volume_max']:.0f}" if "volume_min" in row else "")
            print(f"{key:18s} {label:9s} {row['mean_u']:17.5f} {row['max_u']:10.5f} {vr:>20s}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "bias_exploration_ase.json", "w") as fh:
        json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
