"""GFN1-xTB-labelled MIL-53(Al) test frames at 300 K in every pore state (issue #24).

The first test set (``make_test_set.py``: strained + displaced minima and a linear np -> lp path)
sits 50-200 meV/atom above the minima; this one holds thermal frames, what 300 K MD visits in
each state, so that a campaign is scored per state on the ensemble it should sample:

* ``large`` (lp): NPT, 300 K, 0 bar, from the relaxed large-pore cell;
* ``closed`` (cp): NPT, 300 K, 0 bar, from the relaxed closed-pore cell (GFN1-xTB's minimum at
  747 A^3 per unit, benchmarks_mil53.md);
* ``intermediate``: NVT (Langevin), 300 K, at fixed cells between the states (``--intermediate-volumes``,
  A^3 per unit; cell and fractional coordinates interpolated from cp to lp at the lambda that
  gives that volume, then relaxed at fixed cell with the sampling model), the volumes a
  breathing cell passes through.

The MD is driven by a ubmd model trained on campaign data from all three states (``--model``,
e.g. the unbiased 5 eV/A campaign's data retrained: benchmarks_mil53.md); its frames are then
labelled with the reference, so the labels are exact whatever the sampling model's errors (the
frames are near-thermal for GFN1-xTB as far as the model is accurate; the energies above each
state's minimum are written so that this can be checked). Every state gets the same number of
walkers (different seeds; ``--walkers`` per intermediate cell) of ``--steps`` steps of 0.5 fs; frames every ``--every`` steps after
``--equilibrate`` steps. Frames with any |F| component above 20 eV/A are left out (the AL
loop's label filter).

Labels: :func:`ubmd.labelling.label_structures` (GFN1-xTB, tblite, Gamma point), checkpointed in
``runs/mil53/test300K_labelled.extxyz`` (a restart skips labelled frames). Output
``examples/mil53/data/mil53_test300K_gfn1.extxyz``: energy, forces, stress (ASE sign) and info
``state`` (by volume: closed < 1150 <= intermediate < 1350 <= large, A^3 per unit),
``start_state`` (where its walker started), ``kind`` (= ``md300_<state>``), ``volume_per_fu``, ``ensemble``, ``walker``, ``step``,
``e_above_min_meV_atom`` (GFN1 energy above the state's relaxed structure; intermediate: above
lp), ``label_time_s``.

    nice -n 5 python -m benchmarks.mil53.make_test_set_300K --model MODEL.pt
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.io import read, write  # noqa: E402

from .. import ROOT  # noqa: E402
from ..mil53_campaigns import CLOSED_MAX, LARGE_MIN  # noqa: E402
from .make_test_set import clean, label_with_checkpoint, vpfu  # noqa: E402

DATA = ROOT / "examples" / "mil53" / "data"
STATES = ("large", "intermediate", "closed")


def state_of_volume(v: float) -> str:
    """closed < 1150 <= intermediate < 1350 <= large (A^3 per unit; expanded > 1700 counts as
    large here: 300 K frames do not reach it)."""
    return "closed" if v < CLOSED_MAX else "intermediate" if v < LARGE_MIN else "large"


def interpolated_at_volume(cp, lp, target: float):
    """cp -> lp linear interpolation of cell and fractional coordinates at the lambda whose
    volume per unit is ``target`` (bisection; the volume grows monotonically along the path)."""
    f0, f1 = cp.get_scaled_positions(wrap=False), lp.get_scaled_positions(wrap=False)
    df = f1 - f0
    df -= np.round(df)
    c0, c1 = np.array(cp.cell), np.array(lp.cell)

    def at(lam):
        a = clean(cp)
        a.set_cell(c0 + lam * (c1 - c0), scale_atoms=False)
        a.set_scaled_positions(f0 + lam * df)
        return a

    lo, hi = 0.0, 1.0
    if not vpfu(at(lo)) < target < vpfu(at(hi)):
        raise ValueError(f"intermediate volume {target} A^3 per unit outside the cp-lp path "
                         f"({vpfu(at(lo)):.0f}-{vpfu(at(hi)):.0f})")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if vpfu(at(mid)) < target else (lo, mid)
    a = at(0.5 * (lo + hi))
    a.info["lam"] = 0.5 * (lo + hi)
    return a


def relax_fixed_cell(atoms, model: str, fmax: float = 0.2, steps: int = 300):
    from ase.optimize import FIRE

    from ubmd.calculator import UBMDCalculator

    a = atoms.copy()
    a.calc = UBMDCalculator(model)
    FIRE(a, logfile=None).run(fmax=fmax, steps=steps)
    out = clean(a)
    out.info.update({k: v for k, v in atoms.info.items()})
    return out


def sample(model: str, args) -> list:
    """MD frames per state (ubmd.run_md, LAMMPS engine)."""
    from ubmd.md.engines import run_md

    lp = read(DATA / "mil53_lp_gfn1_2x1x1.extxyz")
    cp = read(DATA / "mil53_np_gfn1_2x1x1.extxyz")
    starts = [("large", "npt", clean(lp)), ("closed", "npt", clean(cp))]
    for v in args.intermediate_volumes:
        starts.append(("intermediate", "nvt",
                       relax_fixed_cell(interpolated_at_volume(cp, lp, v), model)))
    frames = []
    work = Path(args.work) / "test300K_md"
    for k, (state, ens, start) in enumerate(starts):
        n_walkers = args.walkers * (len(args.intermediate_volumes) if ens == "npt" else 1)
        for w in range(n_walkers):
            seed = 100 * k + w
            extra = ({"pressure": 0.0, "pdamp": 1000.0, "tdamp": 100.0} if ens == "npt"
                     else {"thermostat": "langevin", "friction": 0.01})
            t0 = time.perf_counter()
            run = run_md(model, start, work / f"{state}_{k}_w{w}", engine="lammps", seed=seed,
                         ensemble=ens, temperature=300.0, timestep=0.5, max_steps=args.steps,
                         sample_every=args.every, log_every=args.every, tau_forces=0.0, **extra)
            got = [f for f in run.candidates if f.info["step"] > args.equilibrate]
            print(f"  {state:12s} {ens} walker {w}: {run.summary['stop_reason']} after "
                  f"{run.summary['n_steps']} steps, {len(got)} frames, V/unit "
                  f"{min(map(vpfu, got)) if got else float('nan'):.0f}-"
                  f"{max(map(vpfu, got)) if got else float('nan'):.0f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            for f in got:
                a = clean(f)
                a.info.update({"state": state, "kind": f"md300_{state}", "ensemble": ens,
                               "walker": f"{state}_{k}_w{w}", "step": int(f.info["step"])})
                frames.append(a)
    for i, a in enumerate(frames):
        a.info["frame"] = i
        a.info["volume_per_fu"] = vpfu(a)
    return frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="sampling model (ubmd export), Al C H O")
    ap.add_argument("--walkers", type=int, default=2,
                    help="walkers per intermediate cell; the large and closed states get this "
                         "times the number of intermediate cells, so that each state has as many")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--equilibrate", type=int, default=1000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--intermediate-volumes", nargs="+", type=float, default=[1200.0, 1300.0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "mil53"))
    ap.add_argument("--out", default=str(DATA / "mil53_test300K_gfn1.extxyz"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-force", type=float, default=20.0)
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    unlabelled = work / "test300K_frames.extxyz"
    if unlabelled.exists():
        frames = read(unlabelled, ":")
        print(f"{len(frames)} sampled frames from {unlabelled}", flush=True)
    else:
        frames = sample(a.model, a)
        write(unlabelled, frames, format="extxyz")
    t0 = time.perf_counter()
    done, _, _ = label_with_checkpoint(
        frames, work / "test300K_labelled.extxyz", a.workers, 900.0,
        lambda x: f"{x.info['state']:12s} V/unit {x.info['volume_per_fu']:7.1f}")
    wall = time.perf_counter() - t0
    e_min = {}
    for s, n in (("large", "lp"), ("closed", "np"), ("intermediate", "lp")):
        ref = read(DATA / f"mil53_{n}_gfn1_2x1x1.extxyz")
        e_min[s] = ref.get_potential_energy() / len(ref)
    labelled = [done[k] for k in sorted(done)]
    kept = []
    for x in labelled:
        x.info.pop("pool_index", None)
        # the state is the frame's volume (a walker started in one state may leave it), with
        # the boundaries of every MIL-53 benchmark; the start is kept as ``start_state``
        x.info.setdefault("start_state", x.info["state"])
        x.info["state"] = state_of_volume(x.info["volume_per_fu"])
        x.info["kind"] = f"md300_{x.info['state']}"
        x.info["e_above_min_meV_atom"] = 1000.0 * (x.get_potential_energy() / len(x)
                                                   - e_min[x.info["state"]])
        if np.abs(x.get_forces()).max() <= a.max_force:
            kept.append(x)
    write(a.out, kept, format="extxyz")
    summary = {"n_frames": len(frames), "n_labelled": len(labelled), "n_written": len(kept),
               "wall_s_labels_this_run": wall, "states": {}}
    for s in STATES:
        xs = [x for x in kept if x.info["state"] == s]
        if xs:
            v = [x.info["volume_per_fu"] for x in xs]
            e = [x.info["e_above_min_meV_atom"] for x in xs]
            summary["states"][s] = {"n": len(xs), "volume_per_fu": [min(v), max(v)],
                                    "e_above_min_meV_atom": [min(e), float(np.median(e)), max(e)]}
    (work / "test300K_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
