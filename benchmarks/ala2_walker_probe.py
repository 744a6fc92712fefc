"""Why do biased walkers explore less of the (phi, psi) plane? One round, measured, by variant.

A model is trained (fixed epoch budget, the campaign's model and uncertainty settings) on the
first ``--labels`` labels of an archived alanine campaign (``ubmd.al.archive``), as that campaign's
round would have been. From the same starts and seeds, ``--walkers`` walkers then run (LAMMPS
engine) under each setting variant, and the script measures per variant: walker length (steps)
and stop reasons, the fraction of the walk that was biased (steps past the adaptive-scale
window), how far the walkers moved in the dihedral plane (largest |dphi|, |dpsi| from the start,
steps spent at phi > 0, first step at phi > 0), the calibrated atomic uncertainty u_i along the
way, and the model's own level: the median over the training structures of max_i u_i (what
``walkers.threshold_relative`` scales). The variants probe the issue's questions one at a time:
the bias on/off, the burn-in window W, the stop threshold (absolute or relative to the model's
level), tau_F, the H weight, reflections, the walkers' temperature (``_temperature``), and where
walkers start (the last labelled, i.e. selected, frames as
``start_from: previous`` does, or the relaxed C7eq structure).

    python -m benchmarks.ala2_walker_probe --labels 64 --seeds 0 1 2
    python -m benchmarks.ala2_walker_probe --labels 128 --variants unbiased biased biased_w20

Writes ``benchmarks/results/ala2_walker_probe_<labels><tag>.json`` (work files under
``runs/ala2_walker_probe/``).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import yaml

from . import DATA, RESULTS, ROOT
from .campaign_common import git_commit

ARCHIVE = RESULTS / "archive" / "ala2_campaigns_full" / "biased_300K_s2"

#: setting variants: overrides of the walker section (threshold_relative resolved per model)
VARIANTS = {
    "unbiased": {"tau_forces": 0.0},
    "biased": {},  # the campaign's: tau_F 0.25, W 100, w_H 0, threshold 1.5 eV/Å
    "biased_w20": {"window": 20},
    "biased_rel3": {"threshold_relative": 3.0},
    "biased_w20_rel3": {"window": 20, "threshold_relative": 3.0},
    "unbiased_rel3": {"tau_forces": 0.0, "threshold_relative": 3.0},
    "biased_tau1": {"tau_forces": 1.0},
    "biased_wH1": {"weights": {}},
    "biased_from_c7eq": {"_start": "relaxed"},
    "unbiased_from_c7eq": {"tau_forces": 0.0, "_start": "relaxed"},
    "unbiased_thr3": {"tau_forces": 0.0, "threshold": 3.0},
    "biased_thr3": {"threshold": 3.0},
    "unbiased_thr5": {"tau_forces": 0.0, "threshold": 5.0},
    "biased_thr5": {"threshold": 5.0},
    "biased_thr5_tau1": {"threshold": 5.0, "tau_forces": 1.0},
    "biased_reflect": {"reflections": 20},
    "biased_thr3_reflect": {"threshold": 3.0, "reflections": 20},
    "unbiased_reflect": {"tau_forces": 0.0, "reflections": 20},
    "biased_reflect_tau05": {"reflections": 20, "tau_forces": 0.5},
    "biased_reflect_tau01": {"reflections": 20, "tau_forces": 0.1},
    "biased_reflect_600K": {"reflections": 20, "_temperature": 600.0},
    "unbiased_reflect_600K": {"tau_forces": 0.0, "reflections": 20, "_temperature": 600.0},
}


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", type=Path, default=ARCHIVE)
    p.add_argument("--labels", type=int, default=64)
    p.add_argument("--epochs", type=int, default=300, help="fixed training budget")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--walkers", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=4000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "ala2_walker_probe")
    p.add_argument("--tag", default="", help="suffix of the results file name (a separate set of variants)")
    return p.parse_args(argv)


def train(archive: Path, labels: int, epochs: int, out: Path) -> Path:
    """The campaign's model trained on its first ``labels`` labels (cached in ``out``)."""
    from ubmd.al.archive import archived_dataset
    from ubmd.al.config import al_config_from_dict
    from ubmd.training import train_from_config

    if (out / "model.pt").exists():
        return out
    raw = yaml.safe_load((archive / "config.yaml").read_text())
    raw["initial"]["structures"] = str(DATA / "ala2" / "ala2_relaxed.xyz")
    raw["walkers"]["lammps"]["plugin"] = None
    cfg = al_config_from_dict(raw)
    cfg.training.max_time_s = None
    cfg.training.max_epochs = epochs
    cfg.training.patience = epochs
    frames = archived_dataset(archive, labels)
    train_from_config(cfg.train_config(out), frames)
    return out


def model_level(model_file: Path, frames) -> float:
    """Median over ``frames`` of max_i u_i (eV/Å) under the model."""
    from ubmd.al.threshold import max_atomic_uncertainties

    return float(np.median(max_atomic_uncertainties(model_file, frames)))


def walker_stats(summary: dict, trace: dict, window: int, start_cvs) -> dict:
    cvs = np.asarray(trace.get("cvs", np.zeros((0, 2))))
    steps = np.asarray(trace.get("step", []))
    d = (cvs - np.asarray(start_cvs)[None, :] + 180.0) % 360.0 - 180.0 if len(cvs) else cvs
    right = cvs[:, 0] > 0 if len(cvs) else np.zeros(0, bool)
    n = int(summary.get("n_steps", 0))
    return {"n_steps": n, "stop": summary.get("stop_reason"),
            "reflections": int(summary.get("reflections", 0)),
            "biased_fraction": max(0.0, (n - window) / n) if n else 0.0,
            "max_dphi": float(np.abs(d[:, 0]).max()) if len(d) else 0.0,
            "max_dpsi": float(np.abs(d[:, 1]).max()) if len(d) else 0.0,
            "phi_pos_frac": float(right.mean()) if len(right) else 0.0,
            "first_phi_pos_step": int(steps[np.argmax(right)]) if right.any() else None,
            "max_u_i": float(np.nanmax(trace["max_atomic_uncertainty"]))
            if len(trace.get("max_atomic_uncertainty", [])) else None}


def main(argv=None) -> int:
    from ase.io import read

    from ubmd.al.archive import archived_dataset
    from ubmd.al.config import WalkerConfig
    from ubmd.config import check
    from ubmd.executors import JobFailure, LocalExecutor
    from ubmd.md import WalkerTask, run_walker
    from ubmd.md.task import dihedral_values

    a = _args(argv)
    work = a.work / f"labels_{a.labels}"
    model_dir = train(a.archive, a.labels, a.epochs, work / "model")
    model_file = model_dir / "model.pt"
    raw = yaml.safe_load((a.archive / "config.yaml").read_text())
    dih = [raw["dihedrals"]["phi"], raw["dihedrals"]["psi"]]
    frames = archived_dataset(a.archive, a.labels)
    level = model_level(model_file, frames[: int(0.8 * len(frames))])
    selected = frames[-8:]  # the last round's labels: what start_from previous starts from
    relaxed = read(DATA / "ala2" / "ala2_relaxed.xyz")
    base = dict(raw["walkers"])
    base.update(engine="lammps", max_steps=a.max_steps, n_walkers=a.walkers, max_time_s=None,
                log_every=10, sample_every=min(200, a.max_steps))
    base["lammps"] = {**base["lammps"], "plugin": None}
    results = {"labels": a.labels, "epochs": a.epochs, "model_level_eV_A": level,
               "archive": str(a.archive.relative_to(ROOT)), "git": git_commit(), "variants": {}}
    t0 = time.perf_counter()
    for name in a.variants:
        over = copy.deepcopy(VARIANTS[name])
        start_kind = over.pop("_start", "selected")
        temperature = float(over.pop("_temperature", 300.0))
        w = check(WalkerConfig(**{**base, **over}), "walkers")
        threshold = w.threshold
        if w.threshold_relative is not None:
            threshold = max(w.threshold, w.threshold_relative * level)
        w = copy.deepcopy(w)
        w.threshold = threshold
        tasks = []
        for seed in a.seeds:
            for k in range(a.walkers):
                start = relaxed if start_kind == "relaxed" else selected[k % len(selected)]
                wd = work / f"{name}{a.tag}" / f"s{seed}_w{k:02d}"
                tasks.append(WalkerTask(index=k, engine="lammps", model_file=str(model_file),
                                        start=start, workdir=str(wd), temperature=temperature,
                                        pressure=0.0, seed=1000 * seed + k, params=w,
                                        dihedrals=dih))
        stats = []
        with LocalExecutor(a.workers) as ex:
            for i, res in ex.map_unordered(run_walker, tasks):
                if isinstance(res, JobFailure) or res.get("stop_reason") == "error":
                    print(f"{name} walker {i}: {getattr(res, 'reason', None) or res.get('error')}")
                    continue
                t = tasks[i]
                trace = dict(np.load(Path(t.workdir) / "trace.npz"))
                stats.append(walker_stats(res, trace, w.window,
                                          dihedral_values(t.start, dih)))
        agg = {"threshold_eV_A": threshold, "start": start_kind, "temperature_K": temperature,
               "n": len(stats),
               "reflections": int(sum(s.get("reflections", 0) for s in stats)),
               "median_steps": float(np.median([s["n_steps"] for s in stats])),
               "stopped_by_u": sum(s["stop"] == "threshold" for s in stats),
               "mean_biased_fraction": float(np.mean([s["biased_fraction"] for s in stats])),
               "mean_max_dphi": float(np.mean([s["max_dphi"] for s in stats])),
               "mean_max_dpsi": float(np.mean([s["max_dpsi"] for s in stats])),
               "walkers_reaching_phi_pos": sum(s["phi_pos_frac"] > 0 for s in stats),
               "total_steps": int(sum(s["n_steps"] for s in stats)), "walkers": stats}
        results["variants"][name] = agg
        print(f"{name:22s} thr {threshold:5.2f}  steps median {agg['median_steps']:6.0f} "
              f"stop-by-u {agg['stopped_by_u']:2d}/{agg['n']}  biased {agg['mean_biased_fraction']:.2f}"
              f"  max|dphi| {agg['mean_max_dphi']:5.1f}  max|dpsi| {agg['mean_max_dpsi']:5.1f}"
              f"  phi>0 {agg['walkers_reaching_phi_pos']}/{agg['n']}  ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    out = RESULTS / f"ala2_walker_probe_{a.labels}{a.tag}.json"
    if out.exists():  # keep the variants of earlier calls (same model: same labels and epochs)
        old = json.loads(out.read_text())
        if old.get("epochs") == a.epochs:
            results["variants"] = {**old.get("variants", {}), **results["variants"]}
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"model level (median max u_i on its training data) {level:.3f} eV/Å; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
