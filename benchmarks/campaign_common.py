"""Helpers shared by the AL campaign drivers (``ala2_campaigns.py``, ``mil53_campaigns.py``).

Config merging (dotted-key size presets on top of a campaign config), running one
``ubmd al run`` campaign (resumable: rerunning the same command continues it), reading the round
summaries of a campaign directory, and batched float64 predictions of a round's model
(``members.pt``) for test-set errors.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / "benchmarks" / "results" / "archive"


# ---------------------------------------------------------------------------------- configs
def deep_update(base: dict, new: dict) -> dict:
    """Merge ``new`` into ``base`` recursively (dicts merged, everything else replaced)."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def set_dotted(cfg: dict, key: str, value) -> None:
    """``set_dotted(cfg, "walkers.max_steps", 400)`` sets ``cfg["walkers"]["max_steps"]``."""
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def ubmd_exe() -> str:
    exe = Path(sys.executable).with_name("ubmd")
    return str(exe) if exe.exists() else "ubmd"


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or None
    except OSError:
        return None


def run_al(cfg: dict, cfg_path: Path, out: Path, log_path: Path, tag: str) -> dict:
    """Write ``cfg`` (with ``output`` = ``out``) to ``cfg_path`` and run ``ubmd al run`` on it.

    A campaign already in ``out`` is continued; a finished one (``campaign.json`` says so) is
    skipped. Output of the run is appended to ``log_path``. Raises ``RuntimeError`` on failure.
    """
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg = dict(cfg, output=str(out))
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    if campaign_finished(out):
        print(f"[{tag}] finished earlier: {out}", flush=True)
        return {"command": None}
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


# ---------------------------------------------------------------------------------- analysis
def load_rounds(out: Path) -> list[dict]:
    """The ``summary.json`` of every finished round of a campaign directory, in order."""
    rounds, r = [], 0
    while (out / f"round_{r:03d}" / "summary.json").exists():
        rounds.append(json.loads((out / f"round_{r:03d}" / "summary.json").read_text()))
        r += 1
    return rounds


def campaign_finished(out: Path) -> bool:
    camp = out / "campaign.json"
    return bool(json.loads(camp.read_text()).get("finished")) if camp.exists() else False


def curve_rounds(n_rounds: int, n_points: int) -> list[int]:
    """About ``n_points`` round indices spread over 0 .. n_rounds - 1 (first and last included)."""
    idx = np.unique(np.round(np.linspace(0, n_rounds - 1, max(2, n_points))).astype(int))
    return [int(i) for i in idx]


def predict_frames(train_dir: Path, frames, stress: bool = False):
    """Energies [n] and per-frame forces of ``frames`` from the round's members (float64,
    batched; ensembles: the member mean, as in the exported model). With ``stress`` also the
    per-frame stress tensors [n, 3, 3] (eV/Å^3, ASE sign: positive = tensile) as a third item."""
    import torch

    from ubmd import keys as K
    from ubmd.prediction import predict
    from ubmd.data import GraphDataset
    from ubmd.model import load_members

    torch.set_num_threads(1)
    members = load_members(train_dir / "members.pt", dtype=torch.float64)
    species = {int(z): k for k, z in enumerate(members[0].atomic_numbers)}
    data = GraphDataset(frames, float(members[0].cutoff), species, dtype=torch.float64)
    energies, forces, stresses = [], [], []
    for batch in data.batches(50):
        e_sum, f_sum, s_sum = 0.0, 0.0, 0.0
        for m in members:
            pred = predict(m, batch, forces=True, virial=stress)
            e_sum = e_sum + pred[K.ENERGY].detach()
            f_sum = f_sum + pred[K.FORCES].detach()
            if stress:
                s_sum = s_sum + pred[K.STRESS].detach()
        energies.append((e_sum / len(members)).numpy())
        counts = batch[K.N_ATOMS].tolist()
        forces.extend(np.split((f_sum / len(members)).numpy(), np.cumsum(counts)[:-1]))
        if stress:
            stresses.append((s_sum / len(members)).numpy())
    if stress:
        return np.concatenate(energies), forces, np.concatenate(stresses)
    return np.concatenate(energies), forces


def lammps_loop_time(log: Path, which: int = 0) -> tuple[float, int] | None:
    """(seconds, steps) of a ``Loop time of X on N procs for S steps`` line of a LAMMPS log
    (the MD loop alone, without start-up and model loading; ``which``: index among the ``run``
    commands, -1 = the last); None when absent (killed walker)."""
    if not log.exists():
        return None
    loops = [line.split() for line in log.read_text(errors="replace").splitlines()
             if line.startswith("Loop time of ")]
    try:
        parts = loops[which]
    except IndexError:
        return None
    return float(parts[3]), int(parts[8])


def walker_md_costs(out: Path, rounds: list[dict], md_steps: int) -> dict:
    """MD cost of the walkers of ``rounds`` of campaign ``out``: summed walker wall time, and
    per MD step both with start-up (wall) and without (LAMMPS ``Loop time`` of the walkers that
    ended normally)."""
    md_wall = float(sum(w.get("wall_s") or 0.0 for s in rounds for w in (s.get("walkers") or [])))
    loops = [lt for s in rounds for lt in (lammps_loop_time(wd / "log.lammps") for wd in
             sorted((out / f"round_{s['round']:03d}" / "walkers").glob("w*"))) if lt and lt[1] > 0]
    return {"md_walker_wall_s": md_wall,
            "md_wall_ms_per_step": 1000 * md_wall / md_steps if md_steps else None,
            "md_loop_ms_per_step": 1000 * sum(t for t, _ in loops) / sum(n for _, n in loops)
            if loops else None}


# ---------------------------------------------------------------------------------- driver
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


def merged_campaigns(results_path: Path, campaigns: dict) -> tuple[dict, dict]:
    """(the previous results JSON or {}, its campaigns updated with ``campaigns``): campaigns
    and seeds measured by earlier calls with other ``--campaigns`` / ``--seeds`` are kept."""
    old = json.loads(results_path.read_text()) if results_path.exists() else {}
    merged = {name: dict(by_seed) for name, by_seed in old.get("campaigns", {}).items()}
    for name, by_seed in campaigns.items():
        merged.setdefault(name, {}).update(by_seed)
    return old, merged


# ---------------------------------------------------------------------------------- archive
# runs/ is not in git and does not outlive the machine: the analysis keeps, per campaign, what the
# figures and retrain_datasets.py need under benchmarks/results/archive/ (a few 100 kB each)
def archive_dir(benchmark: str, size: str, name: str, seed: int, runs: Path | None = None) -> Path:
    """Where a campaign's archive lives (tiny runs: under ``runs``, not in the repository)."""
    base = (runs / "tiny" / "archive") if size == "tiny" and runs is not None else ARCHIVE
    return base / f"{benchmark}_{size}" / f"{name}_s{seed}"


def save_traces(path: Path, traces: dict, dtype=np.float32) -> None:
    """``{round: {walker: array}}`` as a compressed npz (keys ``r<round>_w<walker>``)."""
    arrays = {f"r{r}_w{w}": np.asarray(a, dtype=dtype) for r, ws in traces.items() for w, a in ws.items()}
    np.savez_compressed(path, **arrays)


def load_traces(path: Path) -> dict:
    """Inverse of ``save_traces`` (float64 arrays, rounds and walkers in order)."""
    out: dict = {}
    with np.load(path) as d:
        for key in d.files:
            r, w = (int(x[1:]) for x in key.split("_"))
            out.setdefault(r, {})[w] = np.asarray(d[key], dtype=float)
    return {r: dict(sorted(ws.items())) for r, ws in sorted(out.items())}


def write_archive(out: Path, dest: Path, traces: dict, dtype=np.float32) -> None:
    """Archive a campaign directory: its config, the last round's data set (gzip; the data set
    of round k is its first ``n_dataset`` frames), the data-set size per round and the traced
    walker values ``{round: {walker: array}}``."""
    rounds = load_rounds(out)
    if not rounds:
        return
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "config.yaml", dest / "config.yaml")
    src = out / f"round_{rounds[-1]['round']:03d}" / "dataset.extxyz"
    with open(src, "rb") as f, gzip.GzipFile(dest / "dataset.extxyz.gz", "wb", mtime=0) as g:
        shutil.copyfileobj(f, g)
    (dest / "rounds.json").write_text(json.dumps(
        [{"round": s["round"], "n_dataset": s["n_dataset"], "labels_used": s["labels_used"]}
         for s in rounds], indent=0))
    save_traces(dest / "traces.npz", traces, dtype)


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a campaign archive (``write_archive``), not a campaign directory."""
    return (path / "rounds.json").exists() and not (path / "round_000").exists()


def archived_traces(out: Path, archive: Path, from_run_dir) -> dict:
    """``from_run_dir(out, rounds)`` while the campaign directory exists, else the archive's
    traces ({} when neither exists)."""
    rounds = load_rounds(out)
    if rounds:
        return from_run_dir(out, rounds)
    return load_traces(archive / "traces.npz") if (archive / "traces.npz").exists() else {}


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


def campaign_dataset(out: Path, archive: Path) -> list:
    """The last round's data set of a campaign, from its directory, else from its archive ([]
    when neither exists)."""
    from ase.io import read

    rounds = load_rounds(out)
    if rounds:
        return read(out / f"round_{rounds[-1]['round']:03d}" / "dataset.extxyz", ":")
    return archived_dataset(archive) if (archive / "dataset.extxyz.gz").exists() else []


def archived_dataset(archive: Path, n: int | None = None) -> list:
    """The first ``n`` frames (all: None) of an archived campaign's data set."""
    from ase.io import read

    with gzip.open(archive / "dataset.extxyz.gz", "rt") as f:
        frames = read(f, ":", format="extxyz")
    return frames if n is None else frames[:n]


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


def sized_config(cfg: dict, preset: dict, config_dir: Path, seed: int) -> dict:
    """Apply a size preset (dotted keys), make the start structure's path absolute (relative
    paths are relative to ``config_dir``) and set every seed of a campaign from ``seed``: start
    perturbations, walker velocities/thermostat, training, selection, split."""
    for key, value in preset.items():
        set_dotted(cfg, key, value)
    start = Path(cfg["initial"]["structures"])
    cfg["initial"]["structures"] = str(start if start.is_absolute() else (config_dir / start).resolve())
    set_dotted(cfg, "initial.seed", int(seed))
    set_dotted(cfg, "walkers.seed", 100_000 * int(seed))
    set_dotted(cfg, "training.seed", 100_000 * int(seed))
    set_dotted(cfg, "selection.seed", int(seed))
    set_dotted(cfg, "data.split_seed", int(seed))
    return cfg


def run_dir(runs: Path, size: str, name: str, seed: int) -> Path:
    return runs / size / f"{name}_s{seed}"


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
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--results", default=None, help=f"JSON path ({results_help})")
    return p


def analyze_started(names, seeds, runs: Path, size: str, analyze_one) -> dict:
    """``{name: {seed: analyze_one(name, seed)}}`` for every campaign that finished round 0."""
    campaigns: dict = {}
    for name in names:
        for seed in seeds:
            if not (run_dir(runs, size, name, seed) / "round_000" / "summary.json").exists():
                continue
            print(f"[{name} s{seed}] analysing", flush=True)
            campaigns.setdefault(name, {})[str(seed)] = analyze_one(name, seed)
    return campaigns


def output_paths(benchmark: str, size: str, runs: Path, results: str | None, results_dir: Path,
                 figures_dir: Path) -> tuple[Path, Path]:
    """(results JSON, figure folder): the tiny size writes under ``runs``, not into the repo."""
    if size == "tiny":
        default, figdir = runs / "tiny" / f"{benchmark}_tiny.json", runs / size / "figures"
    else:
        default, figdir = results_dir / f"{benchmark}_{size}.json", figures_dir
    return (Path(results) if results else default), figdir


def run_sized_campaign(cfg: dict, name: str, size: str, seed: int, runs: Path) -> dict:
    """``ubmd al run`` of a merged config (continues a campaign already in the directory)."""
    out = run_dir(runs, size, name, seed)
    return run_al(cfg, runs / size / "configs" / f"{name}_s{seed}.yaml", out,
                  out.parent / f"{name}_s{seed}.log", f"{name} s{seed}")


def seed_stat(values) -> dict:
    """Mean, standard deviation and count over seeds of the finite values (None counts as missing)."""
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    ok = np.isfinite(x)
    return {"mean": float(np.mean(x[ok])) if ok.any() else None,
            "std": float(np.std(x[ok])) if ok.any() else None, "n": int(ok.sum())}
