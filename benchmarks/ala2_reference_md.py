"""Alanine dipeptide: Ramachandran coverage of fixed-length GFN2-xTB MD (reference-potential baseline).

The unbiased AL campaigns (``benchmarks.ala2_campaigns``) run MLIP walkers that the uncertainty threshold
stops; at 1200 K that happens after a few dozen steps, so the campaign ``unbiased_1200K`` never
measured what high-temperature MD explores. This benchmark gives the baseline the paper compares
biased 300 K MD against: plain Langevin MD with the reference potential itself (GFN2-xTB via
tblite; no model, no threshold, no labels), ``n_walkers`` independent walkers of a fixed length
per temperature, from the relaxed C7eq structure with Maxwell-Boltzmann velocities (seeded per
walker), 0.5 fs step, friction 0.01/fs, dihedrals traced every 10 steps (as the campaigns'
``walkers.log_every``).

It reports the multiscale-grid coverage (2x2 .. 32x32 cells, mean over levels; the campaigns'
metric) of all walkers together against the total number of MD steps (walkers advanced in
parallel: at a total of S steps each walker contributes its first S / n_walkers), next to the
campaigns' accumulated coverage against their MD steps, read from
``benchmarks/results/ala2_campaigns_<size>.json`` when it exists.

Resumable (``ubmd.md.reference``): each walker saves its state (positions, momenta, traced
dihedrals) every ``chunk`` steps under ``--runs``; the same command continues it, and a larger
``--steps`` extends it. Each chunk draws its own seeded random stream and a fresh calculator, so
a resumed walker is identical to an uninterrupted one.

    OMP_NUM_THREADS=1 python -m benchmarks.ala2_reference_md --size tiny      # 2 x 60 steps, smoke
    OMP_NUM_THREADS=1 python -m benchmarks.ala2_reference_md --quick         # 2 x 1000 steps
    OMP_NUM_THREADS=1 python -m benchmarks.ala2_reference_md --size full     # 8 x 12 500 steps

Writes ``benchmarks/results/ala2_reference_md_<size>.json`` and
``docs/figures/ala2_reference_md_<size>.png`` (tiny, quick: under ``--runs``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ubmd.analysis import coverage_vs_steps
from ubmd.md.reference import load_reference_walker, reference_walker_summary, run_reference_walker

from . import DATA, ROOT

DATA_DIR = DATA / "ala2"  # the relaxed start structure and its dihedrals

SIZES = {
    "tiny": dict(walkers=2, steps=60, chunk=30, temperatures=[1200.0]),
    "quick": dict(walkers=2, steps=1000, chunk=500, temperatures=[300.0, 1200.0]),
    "full": dict(walkers=8, steps=12500, chunk=2500, temperatures=[300.0, 1200.0]),
}
TIMESTEP_FS = 0.5
FRICTION_PER_FS = 0.01
LOG_EVERY = 10
MAX_BOND_STRETCH = 1.5
CHECKPOINTS = (10_000, 20_000, 50_000, 100_000, 200_000, 400_000)  # total MD steps always reported
CAMPAIGN_STYLES = {"unbiased_300K": ("tab:blue", "unbiased 300 K"), "biased_300K": ("tab:red", "biased 300 K"),
                   "unbiased_1200K": ("tab:orange", "unbiased 1200 K")}
REFERENCE_STYLES = {300: ("navy", "GFN2-xTB MD 300 K"), 600: ("purple", "GFN2-xTB MD 600 K"),
                    1200: ("black", "GFN2-xTB MD 1200 K")}


def _parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="quick")
    p.add_argument("--quick", action="store_const", const="quick", dest="size", help="= --size quick")
    p.add_argument("--temperatures", type=float, nargs="+", help="K (default: per size)")
    p.add_argument("--walkers", type=int, help="walkers per temperature (default: per size)")
    p.add_argument("--steps", type=int, help="MD steps per walker (default: per size)")
    p.add_argument("--chunk", type=int, help="steps between saved states (default: per size)")
    p.add_argument("--workers", type=int, default=1, help="walkers run at once (processes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "ala2_reference_md")
    p.add_argument("--results", type=Path, help="JSON path (default: benchmarks/results/...)")
    p.add_argument("--figure", type=Path, help="PNG path (default: docs/figures/...)")
    p.add_argument("--campaigns-json", type=Path, help="campaign results to compare against "
                   "(default: benchmarks/results/ala2_campaigns_full.json)")
    p.add_argument("--analyze-only", action="store_true", help="no new MD, re-measure saved walkers")
    args = p.parse_args(argv)
    preset = SIZES[args.size]
    for key in ("temperatures", "walkers", "steps", "chunk"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if args.steps % LOG_EVERY or args.chunk % LOG_EVERY:
        p.error(f"--steps and --chunk must be multiples of {LOG_EVERY}")
    return args


def walker_path(runs: Path, temperature: float, walker: int) -> Path:
    return runs / f"T{int(round(temperature))}_w{walker}.npz"


def run_walker(temperature: float, walker: int, steps: int, chunk: int, seed: int, runs: str) -> dict:
    """Advance one walker to ``steps`` MD steps (resuming its saved state); returns its summary."""
    from ase.io import read

    dih = json.loads((DATA_DIR / "dihedrals.json").read_text())
    bonds = [tuple(b) for b in dih["bonds"]]
    return run_reference_walker(
        walker_path(Path(runs), temperature, walker), read(DATA_DIR / "ala2_relaxed.xyz"),
        "gfn2-xtb", temperature, steps, chunk, [seed, int(round(temperature)), walker],
        timestep_fs=TIMESTEP_FS, friction_per_fs=FRICTION_PER_FS, log_every=LOG_EVERY,
        dihedrals=[dih["phi"]["indices"], dih["psi"]["indices"]], bonds=bonds,
        bond_lengths=[dih["relaxed_bond_lengths_A"][f"{i}-{j}"] for i, j in bonds],
        max_bond_stretch=MAX_BOND_STRETCH)


def campaign_curves(path: Path) -> dict:
    """``{campaign: {seed: [(accumulated MD steps, accumulated coverage) per round]}}``."""
    if path is None or not path.exists():
        return {}
    curves = {}
    for name, by_seed in json.loads(path.read_text()).get("campaigns", {}).items():
        for seed, rec in by_seed.items():
            steps, points = 0, []
            for r in rec.get("rounds", []):
                if r.get("walker_steps") is None or r.get("coverage_cumulative") is None:
                    continue
                steps += int(sum(r["walker_steps"]))
                points.append((steps, float(r["coverage_cumulative"])))
            if points:
                curves.setdefault(name, {})[seed] = points
    return curves


def value_at(points: list, md_steps: int):
    """A campaign's accumulated coverage after at most ``md_steps`` (its last round within them)."""
    within = [(s, c) for s, c in points if s <= md_steps]
    return {"md_steps": within[-1][0], "coverage": within[-1][1]} if within else None


def plot(results: dict, curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    styles = ["-", "--", ":", "-."]
    for name, by_seed in curves.items():
        color, label = CAMPAIGN_STYLES.get(name, ("grey", name))
        for i, (seed, pts) in enumerate(sorted(by_seed.items())):
            s, c = zip(*pts)
            ax.step(s, c, where="post", color=color, lw=1.2, ls=styles[i % len(styles)], alpha=0.8,
                    label=f"AL campaign, {label}, seed {seed}")
    for key, rec in results["temperatures"].items():
        color, label = REFERENCE_STYLES.get(int(key), ("black", f"GFN2-xTB MD {key} K"))
        s = [r["md_steps"] for r in rec["coverage_vs_steps"]]
        c = [r["coverage"] for r in rec["coverage_vs_steps"]]
        ax.plot(s, c, color=color, lw=3, label=f"{label}, {rec['n_walkers']} walkers, no threshold")
    ax.set_xscale("log")
    ax.set_xlabel("MD steps, all walkers (0.5 fs)")
    ax.set_ylabel("accumulated Ramachandran coverage")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = _parse_args(argv)
    runs = args.runs / args.size
    runs.mkdir(parents=True, exist_ok=True)
    results_path = args.results or (
        runs / "ala2_reference_md_tiny.json" if args.size == "tiny"
        else ROOT / "benchmarks" / "results" / f"ala2_reference_md_{args.size}.json")
    figure = args.figure or (runs / f"ala2_reference_md_{args.size}.png" if args.size != "full"
                             else ROOT / "docs" / "figures" / "ala2_reference_md_full.png")
    jobs = [(T, w) for T in args.temperatures for w in range(args.walkers)]
    t0 = time.perf_counter()
    if not args.analyze_only:
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover
            tqdm = None
        with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
            futures = [pool.submit(run_walker, T, w, args.steps, args.chunk, args.seed, str(runs))
                       for T, w in jobs]
            it = tqdm(futures, desc="reference MD walkers", unit="walker") if tqdm else futures
            for fut in it:
                fut.result()
    campaigns_json = args.campaigns_json or ROOT / "benchmarks" / "results" / "ala2_campaigns_full.json"
    curves = campaign_curves(campaigns_json)
    results = {"benchmark": "ala2_reference_md", "size": args.size, "reference": "GFN2-xTB (tblite)",
               "timestep_fs": TIMESTEP_FS, "friction_per_fs": FRICTION_PER_FS, "log_every": LOG_EVERY,
               "seed": args.seed, "wall_s_this_call": time.perf_counter() - t0,
               "campaigns_json": str(campaigns_json.relative_to(ROOT)) if campaigns_json.is_relative_to(ROOT)
               else str(campaigns_json), "temperatures": {}}
    for T in args.temperatures:
        states = [load_reference_walker(walker_path(runs, T, w)) for w in range(args.walkers)]
        if any(s is None for s in states):
            print(f"T={T:g} K: walkers missing under {runs}; run without --analyze-only", file=sys.stderr)
            continue
        walkers = [reference_walker_summary(s) for s in states]
        rows = coverage_vs_steps([s["cvs"] for s in states], LOG_EVERY, checkpoints=CHECKPOINTS)
        final = rows[-1]
        compare = {}
        for row in rows[-1:] + [r for r in rows if r["md_steps"] in CHECKPOINTS]:
            for name, by_seed in curves.items():
                for seed, pts in by_seed.items():
                    v = value_at(pts, row["md_steps"])
                    if v is not None:
                        compare.setdefault(str(row["md_steps"]), {}).setdefault(name, {})[seed] = v
        key = str(int(round(T)))
        results["temperatures"][key] = {
            "n_walkers": args.walkers, "steps_per_walker": min(w["steps"] for w in walkers),
            "md_steps": final["md_steps"], "md_time_ps": final["md_steps"] * TIMESTEP_FS / 1000.0,
            "coverage": final["coverage"], "fraction_per_level": final["fraction_per_level"],
            "phi_positive_fraction": float(np.mean(np.concatenate([s["cvs"][:, 0] for s in states]) > 0)),
            "mean_temperature_K": float(np.mean([w["mean_temperature_K"] for w in walkers])),
            "n_broken_frames": int(sum(w["n_broken_frames"] for w in walkers)),
            "ms_per_step": float(np.mean([w["ms_per_step"] for w in walkers])),
            "walkers": walkers, "coverage_vs_steps": rows, "campaigns_at_equal_md_steps": compare}
        print(f"T={T:g} K: {args.walkers} walkers x {walkers[0]['steps']} steps = {final['md_steps']} "
              f"steps: coverage {final['coverage']:.3f} (levels "
              f"{' / '.join(f'{f:.2f}' for f in final['fraction_per_level'])}), phi>0 "
              f"{results['temperatures'][key]['phi_positive_fraction']:.3f}, "
              f"{results['temperatures'][key]['ms_per_step']:.1f} ms/step")
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1))
    if results["temperatures"]:
        plot(results, curves, figure)
        results["figure"] = str(figure)
        results_path.write_text(json.dumps(results, indent=1))
    print(f"results: {results_path}\nfigure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
