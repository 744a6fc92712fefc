"""Plumbing shared by the AL campaign drivers (``ala2_campaigns``, ``mil53_campaigns``,
``mil53_metadynamics``, ``retrain_datasets``): size presets on top of a campaign config, running
one ``ubmd al run`` campaign (resumable: rerunning the same command continues it), the drivers'
command line, where their results, figures and campaign archives go, and the results JSON.

Reading a campaign directory and archiving it is ubmd's own (:mod:`ubmd.al.archive`), and so is
scoring a round's model on a test set (:func:`ubmd.evaluation.score_members`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from ubmd.al.archive import campaign_finished
from ubmd.config import merge, nested
from ubmd.selection import evenly_spaced

from . import RESULTS, ROOT

ARCHIVE = RESULTS / "archive"


# ---------------------------------------------------------------------------------- configs
def sized_config(cfg: dict, preset: dict, config_dir: Path, seed: int) -> dict:
    """Apply a size preset (dotted keys), make the start structure's path absolute (relative
    paths are relative to ``config_dir``) and set every seed of a campaign from ``seed``: start
    perturbations, walker velocities/thermostat, training, selection, split."""
    merge(cfg, nested(preset))
    start = Path(cfg["initial"]["structures"])
    cfg["initial"]["structures"] = str(start if start.is_absolute() else (config_dir / start).resolve())
    return merge(cfg, nested({"initial.seed": int(seed), "walkers.seed": 100_000 * int(seed),
                              "training.seed": 100_000 * int(seed), "selection.seed": int(seed),
                              "data.split_seed": int(seed)}))


def ubmd_exe() -> str:
    exe = Path(sys.executable).with_name("ubmd")
    return str(exe) if exe.exists() else "ubmd"


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or None
    except OSError:
        return None


def run_dir(runs: Path, size: str, name: str, seed: int) -> Path:
    return runs / size / f"{name}_s{seed}"


def config_path(runs: Path, size: str, name: str, seed: int) -> Path:
    """Where a driver writes the merged config of a campaign."""
    return runs / size / "configs" / f"{name}_s{seed}.yaml"


def write_config(cfg: dict, path: Path, out: Path) -> dict:
    """``cfg`` with ``output`` = ``out``, written to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = dict(cfg, output=str(out))
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def saved_label_budget(out: Path) -> int | None:
    """The label budget of the campaign config saved in ``out`` (None: no campaign there)."""
    try:
        return int(yaml.safe_load((out / "config.yaml").read_text())["label_budget"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def run_al(cfg: dict, cfg_path: Path, out: Path, log_path: Path, tag: str) -> dict:
    """Write ``cfg`` (with ``output`` = ``out``) to ``cfg_path`` and run ``ubmd al run`` on it.

    A campaign already in ``out`` is continued; a finished one (``campaign.json`` says so) is
    skipped. One saved with a smaller ``label_budget`` than ``cfg``'s (``--label-budget``) is
    extended instead: ``ubmd al resume OUT --label-budget N`` (its rounds are kept, its last
    round samples and selects, nothing is redone). Output of the run is appended to
    ``log_path``. Raises ``RuntimeError`` on failure, and for a campaign saved with a larger
    budget than asked for (give ``--label-budget`` that budget to continue or analyse it)."""
    write_config(cfg, cfg_path, out)
    budget, saved = int(cfg["label_budget"]), saved_label_budget(out)
    if saved is not None and saved > budget:
        raise RuntimeError(f"{tag}: {out} holds a campaign with label_budget {saved}, more than "
                           f"the {budget} asked for: add --label-budget {saved}")
    if saved is not None and saved < budget:
        cmd = [ubmd_exe(), "al", "resume", str(out), "--label-budget", str(budget)]
    elif campaign_finished(out):
        print(f"[{tag}] finished earlier: {out}", flush=True)
        return {"command": None}
    else:
        cmd = [ubmd_exe(), "al", "run", str(cfg_path), "--output", str(out)]
    print(f"[{tag}] $ {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{tag}: ubmd al run failed (rc {proc.returncode}); see {log_path}")
    print(f"[{tag}] done in {wall:.0f} s", flush=True)
    return {"command": " ".join(cmd), "wall_s_this_call": wall}


def run_sized_campaign(cfg: dict, name: str, size: str, seed: int, runs: Path) -> dict:
    """``ubmd al run`` of a merged config (continues a campaign already in the directory)."""
    out = run_dir(runs, size, name, seed)
    return run_al(cfg, config_path(runs, size, name, seed), out,
                  out.parent / f"{name}_s{seed}.log", f"{name} s{seed}")


def run_campaigns(names, seeds, run_one) -> tuple[dict, dict, float]:
    """``run_one(name, seed)`` for every campaign and seed; a failed one is recorded, not fatal.

    Returns (commands by ``<name>_s<seed>``, errors by the same key, wall seconds)."""
    t0 = time.perf_counter()
    commands, errors = {}, {}
    for name in names:
        for seed in seeds:
            try:
                commands[f"{name}_s{seed}"] = run_one(name, seed)
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                errors[f"{name}_s{seed}"] = str(exc)
    return commands, errors, time.perf_counter() - t0


def dry_run(names, seeds, size: str, preset: dict, runs: Path, config_of) -> int:
    """``--dry-run``: write the merged config of every campaign and seed (``config_of(name,
    seed)``) where a run would, and print them with the size preset as one JSON document."""
    configs = {}
    for name in names:
        for seed in seeds:
            key = f"{name}_s{seed}"
            configs[key] = write_config(config_of(name, seed), config_path(runs, size, name, seed),
                                        run_dir(runs, size, name, seed))
    print(json.dumps({"size": size, "size_preset": preset, "campaigns": list(names),
                      "seeds": list(seeds), "configs": configs}, indent=1))
    return 0


# ---------------------------------------------------------------------------------- command line
def driver_parser(doc: str, sizes, quick_help: str, campaign_choices, campaigns_help: str,
                  default_runs: Path, results_help: str):
    """The command line common to the campaign drivers (a driver adds its own options)."""
    import argparse

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=tuple(sizes), default="full")
    p.add_argument("--quick", action="store_const", const="quick", dest="size",
                   help=f"= --size quick ({quick_help})")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--campaigns", nargs="+", default=None, choices=campaign_choices,
                   help=campaigns_help)
    p.add_argument("--runs", default=str(default_runs))
    p.add_argument("--analyze-only", action="store_true", help="no campaign runs, only measurements")
    p.add_argument("--dry-run", action="store_true",
                   help="write the merged campaign configs under --runs, print them (JSON), stop")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--results", default=None, help=f"JSON path ({results_help})")
    p.add_argument("--label-budget", type=int, default=None, metavar="N",
                   help="label budget instead of the size's (e.g. 256 after a 128-label uniform "
                        "run): campaigns in --runs that stopped at a smaller budget go on from "
                        "their last round (`ubmd al resume DIR --label-budget N`, nothing is "
                        "redone); results in <benchmark>_<size>_<N>labels.json, archives in "
                        "archive/<benchmark>_<size>_<N>labels/; a size's max_rounds still applies")
    return p


#: archive folder tag per size for this process (``with_label_budget``: ``<size>_<N>labels``),
#: so the archives of an extended campaign do not overwrite the size's own
ARCHIVE_TAGS: dict[str, str] = {}


def size_tag(size: str, label_budget: int | None = None) -> str:
    """How results and archives of a size are named: ``<size>``, or ``<size>_<N>labels`` for a
    ``--label-budget`` run."""
    return size if label_budget is None else f"{size}_{int(label_budget)}labels"


def with_label_budget(sizes: dict, size: str, label_budget: int | None) -> dict:
    """The size preset with ``--label-budget`` applied (the preset itself when None); the
    size's archives then go to ``<benchmark>_<size>_<N>labels`` (``archive_dir``). A size's
    ``max_rounds`` still applies (tiny: 3 rounds)."""
    if label_budget is None:
        return sizes[size]
    if label_budget < 1:
        raise SystemExit(f"--label-budget {label_budget}: must be at least 1")
    ARCHIVE_TAGS[size] = size_tag(size, label_budget)
    return {**sizes[size], "label_budget": int(label_budget)}


# ---------------------------------------------------------------------------------- analysis
def analyze_started(names, seeds, runs: Path, size: str, analyze_one,
                    label_budget: int | None = None) -> dict:
    """``{name: {seed: analyze_one(name, seed)}}`` for every campaign that finished round 0;
    with ``label_budget``, only those saved with that budget (an extended campaign is not
    analysed into the size's results, nor a short one into ``--label-budget``'s)."""
    campaigns: dict = {}
    for name in names:
        for seed in seeds:
            out = run_dir(runs, size, name, seed)
            if not (out / "round_000" / "summary.json").exists():
                continue
            saved = saved_label_budget(out)
            if label_budget is not None and saved is not None and saved != label_budget:
                print(f"[{name} s{seed}] not analysed: its label_budget is {saved}, not "
                      f"{label_budget} (--label-budget {saved} analyses it)", flush=True)
                continue
            print(f"[{name} s{seed}] analysing", flush=True)
            campaigns.setdefault(name, {})[str(seed)] = analyze_one(name, seed)
    return campaigns


def curve_rounds(n_rounds: int, n_points: int) -> list[int]:
    """About ``n_points`` round indices spread over 0 .. n_rounds - 1 (first and last included):
    the models evaluated for the error-vs-labels curves."""
    return evenly_spaced(n_rounds, max(2, n_points))


def cached(cache: Path, compute, fresh=lambda res: True) -> dict:
    """The JSON in ``cache`` if it exists and ``fresh(it)``, else ``compute()``, saved there."""
    if cache.exists():
        res = json.loads(cache.read_text())
        if fresh(res):
            return res
    res = compute()
    cache.write_text(json.dumps(res, indent=1))
    return res


def seed_stat(values) -> dict:
    """Mean, standard deviation and count over seeds of the finite values (None counts as missing)."""
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    ok = np.isfinite(x)
    return {"mean": float(np.mean(x[ok])) if ok.any() else None,
            "std": float(np.std(x[ok])) if ok.any() else None, "n": int(ok.sum())}


# ---------------------------------------------------------------------------------- outputs
# runs/ is not in git and does not outlive the machine: the analysis keeps, per campaign, what the
# figures and retrain_datasets need under benchmarks/results/archive/ (ubmd.al.archive, a few 100 kB)
def archive_dir(benchmark: str, size: str, name: str, seed: int, runs: Path | None = None) -> Path:
    """Where a campaign's archive lives (tiny runs: under ``runs``, not in the repository)."""
    base = (runs / "tiny" / "archive") if size == "tiny" and runs is not None else ARCHIVE
    return base / f"{benchmark}_{ARCHIVE_TAGS.get(size, size)}" / f"{name}_s{seed}"


def with_traces(names: list, traces: dict, what: str, figure: str) -> tuple[list, str]:
    """(the ``names`` whose ``traces`` are non-empty, figure-file suffix). A figure drawn when
    every campaign had its traces is kept: without all of them the suffix (``""`` when all are
    there) names the campaigns drawn into a file of their own."""
    kept = [n for n in names if traces[n]]
    if len(kept) == len(names):
        return kept, ""
    part = "_" + "_".join(kept)
    print(f"no {what} of {', '.join(n for n in names if n not in kept)} (no run directory, no "
          "archive): " + (f"{figure} of the others only, *{part}.png" if kept else f"{figure} not redrawn"),
          file=sys.stderr)
    return kept, part


def output_paths(benchmark: str, size: str, runs: Path, results: str | None, results_dir: Path,
                 figures_dir: Path, label_budget: int | None = None) -> tuple[Path, Path]:
    """(results JSON, figure folder): the tiny size writes under ``runs``, not into the repo;
    a ``--label-budget`` run into ``<benchmark>_<size>_<N>labels.json`` and a figure folder of
    that name, so the size's own results stay as they are."""
    tag = size_tag(size, label_budget)
    if size == "tiny":
        default, figdir = runs / "tiny" / f"{benchmark}_{tag}.json", runs / size / "figures"
    else:
        default = results_dir / f"{benchmark}_{tag}.json"
        figdir = figures_dir if label_budget is None else figures_dir / f"{benchmark}_{tag}"
    return (Path(results) if results else default), figdir


def merged_campaigns(results_path: Path, campaigns: dict) -> tuple[dict, dict]:
    """(the previous results JSON or {}, its campaigns updated with ``campaigns``): campaigns
    and seeds measured by earlier calls with other ``--campaigns`` / ``--seeds`` are kept."""
    old = json.loads(results_path.read_text()) if results_path.exists() else {}
    merged = {name: dict(by_seed) for name, by_seed in old.get("campaigns", {}).items()}
    for name, by_seed in campaigns.items():
        merged.setdefault(name, {}).update(by_seed)
    return old, merged


def results_record(benchmark: str, size: str, preset: dict, merged: dict, old: dict,
                   commands: dict, errors: dict, run_s: float, **fields) -> dict:
    """The results JSON common to the drivers: what ran where, plus the driver's ``fields``."""
    import platform

    import torch

    return {
        "benchmark": benchmark, "size": size, "size_preset": preset,
        "seeds": sorted({int(s) for c in merged.values() for s in c}),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg_at_end": list(os.getloadavg()), "torch": torch.__version__},
        "git_commit": git_commit(),
        "wall_s_campaign_runs_this_call": run_s,
        **fields,
        "errors": errors or old.get("errors") or {},
        "campaigns": merged,
        "commands": {**old.get("commands", {}),
                     **{k: v["command"] for k, v in commands.items() if v.get("command")}},
    }


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=float))
