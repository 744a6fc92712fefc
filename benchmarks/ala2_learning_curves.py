"""Learning curves of alanine-dipeptide AL data sets on the uniform test set, by region.

Each campaign's data set (a campaign directory or its archive, ``ubmd.al.archive``) is cut at
several label counts (its first N labels, in labelling order); each cut is trained with ONE fixed
recipe (the campaign's architecture and loss, ``--epochs`` epochs, no wall-time cap and no early
stop, so the result does not depend on the machine's load; several training seeds) and scored
on

* the uniform (phi, psi) grid, ``examples/ala2/data/ala2_gfn2_grid.extxyz``
  (``benchmarks.make_ala2_grid``): all frames, ``phi<0``, ``phi>0`` and ``c7ax_al`` (C7ax and
  alpha_L, 30 < phi < 110);
* MD at 300 and 600 K (the last 200 frames of ``ala2_gfn2_{300,600}K.extxyz``) and at 1200 K
  (all 600 frames),

as energy RMSE (meV/atom) and force RMSE (eV/Å). A point of the curve is the mean over the
training seeds, with their spread (min, max); over campaign seeds the driver takes as many
campaigns as it is given (``--campaigns``, e.g. one archive per seed) and reports mean and spread
per campaign kind (the directory name without its ``_s<seed>`` suffix).

    python -m benchmarks.ala2_learning_curves                       # the archived seed-2 runs
    python -m benchmarks.ala2_learning_curves --labels 64 128 256 --epochs 300 --seeds 0 1 \\
        --campaigns benchmarks/results/archive/ala2_campaigns_full/*_s2

Resumable (one job per campaign, label count and training seed, its result kept under
``runs/ala2_learning_curves/``). Writes ``benchmarks/results/ala2_learning_curves_<tag>.json`` and
``docs/figures/ala2_learning_curves_<tag>.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from . import FIGURES, RESULTS, ROOT
from .campaign_common import git_commit

ARCHIVES = RESULTS / "archive" / "ala2_campaigns_full"
DATA = ROOT / "examples" / "ala2" / "data"
GRID_GROUPS = ("all", "phi<0", "phi>0", "c7ax_al")
MD_SETS = {"300K": ("ala2_gfn2_300K.extxyz", slice(-200, None)),
           "600K": ("ala2_gfn2_600K.extxyz", slice(-200, None)),
           "1200K": ("ala2_gfn2_1200K.extxyz", slice(None))}


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--campaigns", type=Path, nargs="+",
                   default=sorted(ARCHIVES.glob("*_s2")))
    p.add_argument("--labels", type=int, nargs="+", default=[64, 128, 192, 256])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tag", default="s2")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "ala2_learning_curves")
    p.add_argument("--warm-start", action="store_true",
                   help="train each cut of N labels from the campaign's own round model on its "
                        "first N - B labels (its previous round; campaign directories only, "
                        "not archives) instead of from scratch: warm start vs scratch at equal "
                        "epochs (issue #23)")
    p.add_argument("--collect-only", action="store_true",
                   help="no training: gather the results already computed (a partial curve)")
    return p.parse_args(argv)


def campaign_frames(path: Path) -> tuple[list, dict]:
    """(labelled frames in labelling order, the campaign's config dict) of a campaign directory
    or archive."""
    import yaml

    from ubmd.al.archive import archived_dataset, is_archive
    from ubmd.al.layout import CampaignLayout

    layout = CampaignLayout(path)
    cfg = yaml.safe_load(layout.config.read_text())
    if is_archive(path):
        return archived_dataset(path), cfg
    rounds = layout.finished_rounds()
    if not rounds:
        raise ValueError(f"{path}: no finished round")
    return rounds[-1].dataset_frames(), cfg


def previous_round_model(path: Path, n: int):
    """The training run of the campaign round whose data set is the campaign's first N - B
    labels (B = the round's batch: the round before the one that reached N), or None (an
    archive, or no such round)."""
    from ubmd.al.archive import is_archive
    from ubmd.al.layout import CampaignLayout

    if is_archive(path):
        return None
    rounds = CampaignLayout(path).finished_rounds()
    sizes = [r.read_summary()["n_dataset"] for r in rounds]  # no data set read
    for k in range(1, len(rounds)):
        if sizes[k] == n and sizes[k - 1] < n:
            return rounds[k - 1].train_dir
    return None


def test_sets() -> dict:
    """name -> (frames, group key or None)."""
    from ase.io import read

    grid = read(DATA / "ala2_gfn2_grid.extxyz", ":")
    for f in grid:
        f.info["c7ax_al_group"] = "c7ax_al" if f.info.get("c7ax_al") else "other"
    out = {"grid": (grid, "region"), "grid_c7ax": (grid, "c7ax_al_group")}
    for name, (file, cut) in MD_SETS.items():
        out[name] = (read(DATA / file, ":")[cut], None)
    return out


def score_tests(run_dir, tests: dict) -> dict:
    """Energy (meV/atom) and force (eV/Å) RMSE of a training run's model on ``test_sets()``:
    test -> group -> {E, F, n}."""
    from ubmd.evaluation import score_members

    return {name: {g: {"E": v["energy_rmse_meV_atom"], "F": v["forces_rmse"], "n": v["n"]}
                   for g, v in score_members(run_dir, frames, group_key=key).items()}
            for name, (frames, key) in tests.items()}


def cut_fingerprint(frames) -> str:
    """SHA-1 of a data set cut: atomic numbers, positions, cells and reference labels."""
    import hashlib

    h = hashlib.sha1()
    for f in frames:
        h.update(np.asarray(f.numbers, dtype=np.int64).tobytes())
        h.update(np.asarray(f.positions, dtype=np.float64).tobytes())
        h.update(np.asarray(f.cell[:], dtype=np.float64).tobytes())
        calc = getattr(f, "calc", None)
        if calc is not None and "energy" in calc.results:
            h.update(np.float64(calc.results["energy"]).tobytes())
    return h.hexdigest()


def job(spec: dict) -> dict:
    """Train one cut with the fixed recipe and score it (resumable: the result is kept)."""
    import torch

    from ubmd.config import TrainRunConfig, from_dict
    from ubmd.training import train_from_config

    out = Path(spec["dir"])
    result_file = out / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    torch.set_num_threads(1)
    raw = spec["config"]
    cfg = from_dict(TrainRunConfig, {
        "data": {**raw.get("data", {}), "train": None},
        "model": raw["model"],
        "training": {**raw["training"], "max_epochs": spec["epochs"], "patience": spec["epochs"],
                     "max_time_s": None, "seed": spec["seed"], "progress": False,
                     "n_workers": 1},
        "uncertainty": {"kind": "none"}, "output": str(out), "export_dtype": "float32"})
    init = None
    if spec.get("warm_from"):
        from ubmd.io import RunFiles
        from ubmd.model import load_members

        init = load_members(RunFiles(spec["warm_from"]).members)
    t0 = time.perf_counter()
    train_from_config(cfg, spec["frames"], init_members=init)
    scores = {"train_s": time.perf_counter() - t0, **score_tests(out, spec["tests"])}
    result = {"campaign": spec["campaign"], "labels": spec["labels"], "seed": spec["seed"],
              "warm_from": spec.get("warm_from"), "scores": scores}
    result_file.write_text(json.dumps(result, indent=1))
    return result


def rows(results: list[dict]) -> dict:
    """kind -> labels -> test -> group -> {E, F: [mean, min, max]} over seeds and campaigns."""
    table: dict = {}
    for r in results:
        kind = re.sub(r"_s\d+$", "", r["campaign"])
        for test, groups in r["scores"].items():
            if test == "train_s":
                continue
            for g, v in groups.items():
                cell = table.setdefault(kind, {}).setdefault(r["labels"], {}).setdefault(
                    test, {}).setdefault(g, {"E": [], "F": []})
                cell["E"].append(v["E"])
                cell["F"].append(v["F"])
    for kind in table.values():
        for tests in kind.values():
            for groups in tests.values():
                for g, v in groups.items():
                    groups[g] = {q: [float(np.mean(x)), float(np.min(x)), float(np.max(x)), len(x)]
                                 for q, x in v.items()}
    return table


def plot(table: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [("grid", "all", "grid: whole plane"), ("grid", "phi<0", "grid: φ < 0"),
              ("grid", "phi>0", "grid: φ > 0"), ("grid_c7ax", "c7ax_al", "grid: C7ax / αL"),
              ("300K", "all", "300 K MD"), ("1200K", "all", "1200 K MD")]
    fig = Figure(figsize=(13, 6.5), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    for ax, (test, group, title) in zip(axes.ravel(), panels):
        for k, (kind, by_labels) in enumerate(sorted(table.items())):
            xs = sorted(by_labels)
            ys = [by_labels[x].get(test, {}).get(group, {}).get("F") for x in xs]
            keep = [(x, y) for x, y in zip(xs, ys) if y]
            if not keep:
                continue
            x = np.array([p[0] for p in keep])
            m = np.array([p[1][0] for p in keep])
            lo = np.array([p[1][1] for p in keep])
            hi = np.array([p[1][2] for p in keep])
            ax.plot(x, m, "-o", color=f"C{k}", label=kind)
            ax.fill_between(x, lo, hi, color=f"C{k}", alpha=0.2)
        ax.set(title=title, xlabel="labels", ylabel="force RMSE (eV/Å)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(title="campaign (band: min-max over seeds)", fontsize=8)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    from ubmd.executors import JobFailure, LocalExecutor

    a = _args(argv)
    tests = test_sets()
    specs = []
    for camp in a.campaigns:
        frames, cfg = campaign_frames(camp)
        for n in a.labels:
            if n > len(frames):
                print(f"{camp.name}: {len(frames)} labels, skipping {n}")
                continue
            # the cache is keyed by the cut's content, not only by the campaign's name: two
            # campaigns of one name (an archive and a rerun under another protocol) never share
            key = cut_fingerprint(frames[:n])
            warm = previous_round_model(camp, n) if a.warm_start else None
            if a.warm_start and warm is None:
                print(f"{camp.name}: no round model on its first labels before {n}, skipping")
                continue
            for seed in a.seeds:
                specs.append({"campaign": camp.name, "labels": n, "seed": seed,
                              "epochs": a.epochs, "frames": frames[:n], "config": cfg,
                              "tests": tests, "data_sha1": key,
                              "warm_from": None if warm is None else str(warm),
                              "dir": str(a.work / f"e{a.epochs}{'_warm' if warm else ''}"
                                         / camp.name / f"n{n}_s{seed}_{key[:10]}")})
    if a.collect_only:
        specs = [s for s in specs if (Path(s["dir"]) / "result.json").exists()]
    print(f"{len(specs)} trainings ({a.epochs} epochs each)", flush=True)
    results, t0 = [], time.perf_counter()
    with LocalExecutor(a.workers, threads=1, inline=a.collect_only) as ex:
        for k, (i, res) in enumerate(ex.map_unordered(job, specs), 1):
            s = specs[i]
            if isinstance(res, JobFailure):
                print(f"{s['campaign']} n{s['labels']} s{s['seed']}: {res.reason}", flush=True)
                continue
            results.append(res)
            g = res["scores"]["grid"]
            print(f"[{k}/{len(specs)}] {s['campaign']:>18s} n{s['labels']:<4d} s{s['seed']}: grid F "
                  f"{g['all']['F']:.3f} (phi<0 {g['phi<0']['F']:.3f}, phi>0 {g['phi>0']['F']:.3f}) "
                  f"E {g['all']['E']:.2f} meV/atom; 300K F {res['scores']['300K']['all']['F']:.3f} "
                  f"({res['scores']['train_s']:.0f} s, elapsed {time.perf_counter() - t0:.0f} s)",
                  flush=True)
    table = rows(results)
    out = RESULTS / f"ala2_learning_curves_{a.tag}.json"
    out.write_text(json.dumps({"epochs": a.epochs, "seeds": a.seeds, "labels": a.labels,
                               "campaigns": [str(c.relative_to(ROOT)) if c.is_relative_to(ROOT)
                                             else str(c) for c in a.campaigns],
                               "git": git_commit(), "curves": table, "runs": results},
                              indent=1) + "\n")
    FIGURES.mkdir(parents=True, exist_ok=True)
    plot(table, FIGURES / f"ala2_learning_curves_{a.tag}.png")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
