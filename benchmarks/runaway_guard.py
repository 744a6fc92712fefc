"""The runaway guard of biased walkers, measured: how hot biased alanine dipeptide walkers get at
tau_F = 0.25 and 2 with and without the guard (``walkers.runaway_factor``), with the ASE and the
LAMMPS engine.

A deliberately coarse model (the first ``--frames`` frames of the 300 K GFN2-xTB data, a small
network, ``--epochs`` epochs: what a campaign's first rounds have) drives NVT walkers at 600 K
from the first frame, with the uncertainty stop switched off (threshold 1e6 eV/Å), so that only
the guard can stop them; per tau_F and engine ``--seeds`` walkers of ``--steps`` steps, with the
temperature logged every step. Per walker: the stop reason, the step, the largest kinetic
temperature reached (K and as a multiple of 600 K) and the guard's level; per setting the
largest multiple over the seeds and how many stayed below 2x.

    python -m benchmarks.runaway_guard                      # both engines, guard on and off
    python -m benchmarks.runaway_guard --engines lammps --seeds 10

Writes ``benchmarks/results/runaway_guard.json`` (work files under ``runs/runaway_guard/``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from . import RESULTS, ROOT
from .campaign_common import git_commit

DATA = ROOT / "examples" / "ala2" / "data" / "ala2_gfn2_300K.extxyz"
TARGET_K = 600.0


def train_model(out: Path, n_frames: int, epochs: int) -> Path:
    import ubmd

    if (out / "model.pt").exists():
        return out / "model.pt"
    frames = ubmd.read_structures(DATA, index=f":{n_frames}")
    ubmd.train({"model": {"cutoff": 5.0, "n_radial": 6, "n_basis": 8, "hidden": [32, 32]},
                "training": {"max_epochs": epochs, "batch_size": 8, "lr": 0.01,
                             "dtype": "float32", "progress": False},
                "uncertainty": {"kind": "posterior", "features": "last_layer"},
                "data": {"valid_fraction": 0.2}}, frames=frames, output=out)
    return out / "model.pt"


def walk(model: Path, start, out: Path, engine: str, tau: float, seed: int, steps: int,
         guard: bool) -> dict:
    import ubmd

    t0 = time.perf_counter()
    run = ubmd.run_md(model, start, out, engine=engine, seed=seed, temperature=TARGET_K,
                      tau_forces=tau, window=100, weights={"H": 0.0}, max_steps=steps,
                      log_every=1, sample_every=steps, threshold=1e6,
                      runaway_factor=1.5 if guard else None)
    s = run.summary
    if s.get("stop_reason") == "error":
        raise RuntimeError(s.get("error"))
    t_max = float(np.max(run.trace["temperature"])) if len(run.trace.get("temperature", [])) \
        else float("nan")
    t_max = max(t_max, float(s.get("max_temperature_K") or 0.0))
    return {"seed": seed, "stop_reason": s["stop_reason"], "n_steps": s["n_steps"],
            "max_temperature_K": t_max, "max_ratio": t_max / TARGET_K,
            "guard_K": s.get("runaway_temperature_K"), "wall_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--taus", type=float, nargs="+", default=[0.25, 2.0])
    p.add_argument("--engines", nargs="+", default=["lammps", "ase"])
    p.add_argument("--no-unguarded", action="store_true", help="skip the runs without guard")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "runaway_guard")
    p.add_argument("--out", type=Path, default=RESULTS / "runaway_guard.json")
    a = p.parse_args(argv)
    import ubmd

    model = train_model(a.runs / "model", a.frames, a.epochs)
    start = ubmd.read_structures(DATA, index="0")[0]
    rows = []
    for engine in a.engines:
        for tau in a.taus:
            for guard in ([True] if a.no_unguarded else [True, False]):
                walkers = [walk(model, start, a.runs / f"{engine}_tau{tau:g}_{'guard' if guard else 'free'}_s{s}",
                                engine, tau, s, a.steps, guard) for s in range(a.seeds)]
                ratios = [w["max_ratio"] for w in walkers]
                row = {"engine": engine, "tau_forces": tau, "guard": guard,
                       "max_ratio": float(np.max(ratios)), "median_ratio": float(np.median(ratios)),
                       "below_2x": int(sum(r < 2.0 for r in ratios)), "n": len(walkers),
                       "stops": {k: sum(w["stop_reason"] == k for w in walkers)
                                 for k in sorted({w["stop_reason"] for w in walkers})},
                       "walkers": walkers}
                rows.append(row)
                print(f"{engine:6s} tau_F {tau:<4g} guard {'on ' if guard else 'off'}: "
                      f"max T {row['max_ratio']:.2f}x (median {row['median_ratio']:.2f}x), "
                      f"{row['below_2x']}/{row['n']} below 2x, stops {row['stops']}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"commit": git_commit(), "target_K": TARGET_K,
                                 "settings": {k: str(v) for k, v in vars(a).items()},
                                 "rows": rows}, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
