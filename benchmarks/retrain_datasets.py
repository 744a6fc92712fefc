"""Retrain each AL campaign's data set with equal compute (alanine dipeptide or MIL-53(Al)).

The AL campaigns of ``benchmarks.ala2_campaigns`` and ``benchmarks.mil53_campaigns`` retrain their model every round under a wall-time cap
(90 s / 120 s at full size), so a campaign's final test errors mix two things: the data it chose and how
many epochs its last round got on a loaded machine. This script separates them: it takes each
campaign's data set at the same number of labels (default: the largest count every campaign
reached), trains one model per data set with the same settings and the same number of epochs
(the campaign's architecture, learning-rate schedule decaying over ``--epochs``, the campaign's
validation split; compiled training step and the energy-weighted final stage of
docs/accuracy.md; two at a time in separate processes; equal epochs rather than equal wall
time, so the comparison does not depend on the machine's load; ``--minutes`` is only a safety
cap), and evaluates them on the system's test sets: alanine dipeptide at 300 K, 600 K and
1200 K (energy RMSE meV/atom, force RMSE and max |force error| eV/Å, as the alanine campaigns);
MIL-53(Al) on ``mil53_test_gfn1.extxyz`` overall and per kind (lp / np perturbations,
interpolations; also stress RMSE in GPa, as the MIL-53 campaigns).

    python -m benchmarks.retrain_datasets ala2                   # the three full seed-0 campaigns
    python -m benchmarks.retrain_datasets ala2 --labels 216 --epochs 500
    python -m benchmarks.retrain_datasets mil53 --epochs 200    # the three 300 K +-2500 bar ones

A campaign is a campaign directory under ``runs/`` or, once that is gone (``runs/`` is not in
git), the archive the drivers' analysis wrote of it (``benchmarks/results/archive/<driver>_<size>/
<campaign>_s<seed>/``: config, data set, round sizes; ``ubmd.al.archive``); the campaign's own
capped model is then not evaluated:

    python -m benchmarks.retrain_datasets ala2 --tag s1 --campaigns \
        benchmarks/results/archive/ala2_campaigns_full/{unbiased_300K,biased_300K}_s1

Writes ``benchmarks/results/retrain_<system>_<--tag>.json`` (default tag ``full``); models under
``runs/retrain/<system>_<tag>/<campaign>/`` (not in git).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

from ubmd.al.archive import archived_dataset, pick_round, read_rounds

from . import RESULTS, ROOT
from .campaign_common import write_results

DEFAULT = {
    "ala2": [ROOT / "runs" / "ala2_campaigns" / "full" / f"{n}_s0"
             for n in ("unbiased_300K", "biased_300K", "unbiased_1200K")],
    "mil53": [ROOT / "runs" / "mil53_campaigns" / "full" / f"{n}_300K_pm2500_s0"
              for n in ("unbiased", "bias_forces", "bias_forces_stress")],
}
def _mil53_sets() -> tuple:
    from .mil53_campaigns import KINDS

    return ("all",) + KINDS


SETS = {"ala2": ("300K", "600K", "1200K"), "mil53": _mil53_sets()}


def test_frames(system: str):
    """(test data, evaluate(train_dir, data, cache) -> errors) of a system's campaign driver."""
    if system == "ala2":
        from .ala2_campaigns import evaluate, test_sets

        return test_sets(), evaluate
    from .mil53_campaigns import evaluate, load_test_set

    return load_test_set(), evaluate


def train_one(out: str, round_index: int, n_dataset: int, dest: str, epochs: int, minutes: float,
              seed: int) -> dict:
    """Train one model on round ``round_index``'s data set (``n_dataset`` frames) of campaign
    ``out`` (own process)."""
    import torch

    from ubmd.al.config import load_al_config
    from ubmd.data import read_structures
    from ubmd.training import train_from_config

    torch.set_num_threads(1)
    out_p = Path(out)
    cfg = load_al_config(out_p / "config.yaml")
    tcfg = cfg.train_config(dest)
    tcfg.training = dataclasses.replace(
        tcfg.training, max_time_s=60.0 * minutes, max_epochs=int(epochs), patience=100_000,
        compile=True, final_fraction=0.2, final_weight_energy=100.0, n_models=1, n_workers=1,
        seed=seed, progress=False)
    path = out_p / f"round_{round_index:03d}" / "dataset.extxyz"
    frames = read_structures(path) if path.exists() else archived_dataset(out_p, n_dataset)
    if len(frames) != n_dataset:
        raise RuntimeError(f"{out}: round {round_index} has {len(frames)} frames, expected {n_dataset}")
    t0 = time.perf_counter()
    summary = train_from_config(tcfg, frames)
    hist = json.loads((Path(dest) / "history.json").read_text())
    return {"train_wall_s": time.perf_counter() - t0, "n_train": summary["n_train"],
            "epochs_run": int(hist[0][-1]["epoch"]) + 1 if hist and hist[0] else 0,
            "n_valid": summary["n_valid"], "best_epochs": summary.get("best_epochs"),
            "errors_valid": summary.get("errors_valid")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("system", choices=tuple(DEFAULT))
    p.add_argument("--campaigns", nargs="+", default=None,
                   help="AL campaign directories (default: the system's full seed-0 campaigns)")
    p.add_argument("--labels", type=int, default=None,
                   help="data-set size to retrain (default: the smallest final size of the campaigns)")
    p.add_argument("--epochs", type=int, default=1500, help="training epochs per model")
    p.add_argument("--minutes", type=float, default=40.0, help="wall-time cap per model (safety)")
    p.add_argument("--workers", type=int, default=2, help="models trained at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="full")
    a = p.parse_args(argv)
    outs = [Path(c).resolve() for c in (a.campaigns or DEFAULT[a.system])]
    for o in outs:
        if not read_rounds(o):
            raise SystemExit(f"{o}: not an AL campaign directory (or archive) with a finished round")
    labels = a.labels or min(read_rounds(o)[-1]["n_dataset"] for o in outs)
    try:
        picks = {o.name: pick_round(o, labels) for o in outs}
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    work = ROOT / "runs" / "retrain" / f"{a.system}_{a.tag}"
    jobs = {}
    with cf.ProcessPoolExecutor(a.workers, mp_context=mp.get_context("spawn")) as pool:
        for o in outs:
            dest = work / o.name
            want = {"round": picks[o.name]["round"], "epochs": a.epochs, "seed": a.seed}
            done = dest / "retrain.json"
            if (dest / "members.pt").exists() and done.exists() and all(
                    json.loads(done.read_text()).get(k) == v for k, v in want.items()):
                continue  # the same model was trained before
            dest.mkdir(parents=True, exist_ok=True)
            for stale in ("retrain.json", "test_errors.json"):
                (dest / stale).unlink(missing_ok=True)
            print(f"[{o.name}] training on round {picks[o.name]['round']} "
                  f"({picks[o.name]['n_dataset']} structures), {a.epochs} epochs", flush=True)
            jobs[o.name] = (want, pool.submit(train_one, str(o), want["round"],
                                              picks[o.name]["n_dataset"], str(dest),
                                              a.epochs, a.minutes, a.seed))
        for name, (want, fut) in jobs.items():
            (work / name / "retrain.json").write_text(
                json.dumps({**want, **fut.result()}, indent=1, default=float))
    sets, evaluate = test_frames(a.system)
    res = {}
    for o in outs:
        dest = work / o.name
        info = json.loads((dest / "retrain.json").read_text())
        capped = o / f"round_{picks[o.name]['round']:03d}" / "train"
        res[o.name] = {**info, "campaign": str(o), "round": picks[o.name]["round"],
                       "n_dataset": picks[o.name]["n_dataset"],
                       "test_errors": evaluate(dest, sets, dest / "test_errors.json"),
                       # the campaign's own model (not archived: only while runs/ has it)
                       "test_errors_campaign_model": evaluate(capped, sets, capped / "test_errors.json")
                       if (capped / "members.pt").exists() else None}
    out = {"benchmark": "retrain_datasets", "system": a.system, "labels": labels, "epochs": a.epochs,
           "minutes_cap_per_model": a.minutes,
           "seed": a.seed, "settings": "campaign architecture and lr schedule; compile; final_fraction "
                                       "0.2 x energy weight 100; one model; the campaign's split",
           "command": "python -m benchmarks.retrain_datasets " + " ".join(
               sys.argv[1:] if argv is None else argv),
           "campaigns": res}
    path = RESULTS / f"retrain_{a.system}_{a.tag}.json"
    write_results(path, out)
    print(f"\nretrained on {labels} labels, {a.epochs} epochs each (campaign model in brackets)")
    print(f"{'campaign':28s} {'n':>4s} {'epochs':>6s} | " + " | ".join(
        f"{t:>10s} E meV/at   F eV/Å" for t in SETS[a.system]))
    for name, r in res.items():
        te, tc = r["test_errors"], r["test_errors_campaign_model"] or {
            t: {"energy_rmse_meV_atom": float("nan"), "forces_rmse": float("nan")} for t in SETS[a.system]}
        cells = " | ".join(f"{te[t]['energy_rmse_meV_atom']:5.2f} ({tc[t]['energy_rmse_meV_atom']:5.2f}) "
                           f"{te[t]['forces_rmse']:.3f} ({tc[t]['forces_rmse']:.3f})"
                           for t in SETS[a.system])
        ep = r.get("epochs_run", -1)
        print(f"{name:28s} {r['n_dataset']:4d} {ep:6d} | {cells}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
