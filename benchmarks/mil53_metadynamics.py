"""MIL-53(Al): the metadynamics baseline at the AL campaigns' label budget.

The paper compares the data of uncertainty-biased NPT with data from metadynamics on the
breathing CV (the cell volume). This driver builds that data set with the same label budget,
reference, start data and training settings as one AL campaign of ``benchmarks.mil53_campaigns``, and
measures it the same way. Steps (each resumable from the files it leaves in
``runs/mil53_campaigns/<size>/metad_<campaign>_s<seed>/``):

1. **Model for the MD**: the final model of the campaign named by ``--model-from`` (default: the
   ``--campaign`` itself, ``unbiased_300K_pm2500``; same size and seed), which must have finished. Metadynamics needs a
   model that is stable in NPT, and a model trained on the 8 start structures is not
   (docs/benchmarks_mil53.md, section 3); the unbiased campaign's data involve no uncertainty bias.
2. **Runs**: ``walkers.n_walkers`` well-tempered metadynamics NPT runs on the volume per formula
   unit (``benchmarks.mil53.metadynamics_baseline``: ``fix external`` on the barostat, ``pair_style ubmd``
   without uncertainty bias), from the lp start structure, at the campaign's temperature, with the
   campaign's pressures alternating between runs, ``walkers.max_steps`` steps each, a frame every
   ``walkers.sample_every`` steps, two runs at a time.
3. **Selection**: ``label_budget`` minus the campaign's round-0 labels, from all frames of all
   runs, with the campaign's selection method on the MD model's features (``--selection
   uniform``: evenly spaced in time instead, ``ubmd.selection.evenly_spaced``).
4. **Labels**: the campaign's reference (GFN1-xTB), checkpointed per structure.
5. **Training**: the campaign's round-0 labelled structures + these labels, with the campaign's
   model and training settings (one training, from scratch).
6. **Measurements**: test errors on ``mil53_test_gfn1.extxyz`` as for the campaigns (overall and
   per kind), pore-state fractions of all metadynamics frames and of the labelled set, costs.

    python -m benchmarks.mil53_metadynamics --size full
    python -m benchmarks.mil53_metadynamics --size tiny --campaign bias_forces_stress_300K_pm2500

Writes ``benchmarks/results/mil53_metadynamics_<size>_<tag>.json`` (tiny: ``results.json`` in the
run directory), with tag = ``<campaign>[_md-<model-from>][_uniform]_s<seed>``, also the name of
the run directory. Frames of runs halted by the 2000 K guard are kept up to the halt; labels with
forces above ``reference.max_force`` are dropped (and count against the budget), as in the AL loop.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ubmd.al.archive import campaign_finished, load_rounds
from ubmd.al.walkers import cyclic  # walker i gets entry i mod len, as in the AL loop
from ubmd.selection import evenly_spaced

from . import RESULTS, ROOT, module_command, module_env
from .campaign_common import git_commit, run_dir
from .mil53_campaigns import (ATOMS_PER_FU, SIZES, campaign_config, evaluate, load_test_set,
                              state_summary)

METAD_MODULE = "mil53.metadynamics_baseline"
# metadynamics settings (docs/benchmarks_mil53.md, section 3)
METAD = {"height": 0.1, "sigma": 20.0, "biasfactor": 20.0, "pace": 100, "wall_lo": 800.0,
         "wall_hi": 1700.0}


def run_metad(model: Path, cfg: dict, out: Path, seed: int) -> list[dict]:
    """The metadynamics runs (finished ones are skipped); returns their summaries."""
    w = cfg["walkers"]
    start = cfg["initial"]["structures"]
    jobs = []
    for k in range(int(w["n_walkers"])):
        d = out / "runs" / f"m{k:02d}"
        if (d / "summary.json").exists():
            continue
        cmd = module_command(
            METAD_MODULE, "--model", model, "--start", start, "--out", d,
            "--temperature", cyclic(w["temperature"], k), "--pressure", cyclic(w["pressure"], k),
            "--steps", w["max_steps"], "--timestep", w["timestep"], "--tdamp", w["tdamp"],
            "--pdamp", w["pdamp"], "--dump-every", w["sample_every"], "--seed", 1 + 1000 * seed + k,
            "--height", METAD["height"], "--sigma", METAD["sigma"],
            "--biasfactor", METAD["biasfactor"], "--pace", METAD["pace"],
            "--wall-lo", METAD["wall_lo"], "--wall-hi", METAD["wall_hi"])
        jobs.append((d, cmd))
    env = dict(module_env(), OMP_NUM_THREADS="1")  # two runs at a time on their own cores

    def run_one(job) -> None:
        d, cmd = job
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "driver.out", "w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run_one, jobs))
    summaries = []
    for k in range(int(w["n_walkers"])):
        p = out / "runs" / f"m{k:02d}" / "summary.json"
        summaries.append(json.loads(p.read_text()) if p.exists() else {"error": f"no {p}"})
    return summaries


def select_frames(frames, n: int, method: str, model_dir: Path, cfg: dict, initial, seed: int):
    if n >= len(frames):
        return list(range(len(frames)))
    if method == "uniform":
        return evenly_spaced(len(frames), n)
    from ubmd.al.config import al_config_from_dict
    from ubmd.selection.pool import RunFeatures, select_from_pool

    acfg = al_config_from_dict(cfg)
    model = RunFeatures(model_dir, acfg.train_config(model_dir))
    idx = select_from_pool(model, frames, initial, initial, acfg.selection.method, n, seed=seed)
    return [int(i) for i in idx]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=tuple(SIZES), default="full")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--campaign", default="unbiased_300K_pm2500",
                    help="campaign whose budget, reference, pressures and training settings are used")
    ap.add_argument("--model-from", default=None,
                    help="campaign whose final model runs the MD (default: --campaign)")
    ap.add_argument("--selection", choices=("campaign", "uniform"), default="campaign")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "mil53_campaigns"))
    ap.add_argument("--results", default=None)
    args = ap.parse_args(argv)
    runs = Path(args.runs)
    src_name = args.model_from or args.campaign
    src = run_dir(runs, args.size, src_name, args.seed)
    base = run_dir(runs, args.size, args.campaign, args.seed)
    for d, what in ((src, "--model-from"), (base, "--campaign")):
        if not campaign_finished(d):
            print(f"{what}: campaign {d} has not finished; run benchmarks.mil53_campaigns first",
                  file=sys.stderr)
            return 2
    cfg = campaign_config(args.campaign, args.size, args.seed)
    last = load_rounds(src)[-1]["round"]
    model_dir = src / f"round_{last:03d}" / "train"
    tag = args.campaign + (f"_md-{src_name}" if src_name != args.campaign else "") + (
        "_uniform" if args.selection == "uniform" else "") + f"_s{args.seed}"
    out = runs / args.size / f"metad_{tag}"
    out.mkdir(parents=True, exist_ok=True)
    from ubmd.al.config import al_config_from_dict
    from ubmd.labelling import collect_labels, label_checkpointed
    from ubmd.al.training import train_round
    from ubmd.io import write_frames_atomic as write_candidates, write_json_atomic
    from ubmd.analysis import volume_per_fu
    from ubmd.data import read_structures

    summaries = run_metad(model_dir / "model.pt", cfg, out, args.seed)
    unfinished = [k for k, s in enumerate(summaries) if "steps_done" not in s]
    if unfinished:
        print(f"metadynamics runs {unfinished} did not finish (see {out / 'runs'}/m*/driver.out); "
              "rerun this command to redo them", file=sys.stderr)
        return 1
    frames = []
    for k in range(len(summaries)):
        p = out / "runs" / f"m{k:02d}" / "frames.extxyz"
        if p.exists():
            for f in read_structures(p):
                f.info["metad_run"] = k
                frames.append(f)
    if not frames:
        print(f"no metadynamics frame in {out / 'runs'}", file=sys.stderr)
        return 1
    initial = read_structures(base / "round_000" / "labelled.extxyz")
    n_new = int(cfg["label_budget"]) - len(read_structures(base / "round_000" / "to_label.extxyz"))
    if n_new < 1:
        print(f"the label budget ({cfg['label_budget']}) leaves nothing beyond round 0",
              file=sys.stderr)
        return 2
    sel_path, sel_info = out / "selected.extxyz", out / "selection.json"
    if not sel_info.exists():  # written after selected.extxyz: marks the selection as done
        t1 = time.perf_counter()
        idx = select_frames(frames, n_new, args.selection, model_dir, cfg, initial, args.seed)
        write_candidates([frames[i] for i in idx], sel_path)
        write_json_atomic({"indices": idx, "n_frames": len(frames), "wall_s": time.perf_counter() - t1},
                          sel_info)
    selection = json.loads(sel_info.read_text())
    selected = read_structures(sel_path)
    acfg = al_config_from_dict(cfg)
    info = label_checkpointed(selected, out / "labels", acfg.reference)
    got = collect_labels(out / "labels", len(selected), acfg.reference.max_force)
    dataset = initial + got["kept"]
    train_dir = out / "train"
    summary_path = out / "train_summary.json"  # written last: marks the training as done
    if not (summary_path.exists() and (train_dir / "model.pt").exists()):
        t2 = time.perf_counter()
        train_summary = train_round(acfg, dataset, train_dir, None, 0)
        train_summary["wall_s"] = time.perf_counter() - t2
        write_json_atomic(json.loads(json.dumps(train_summary, default=str)), summary_path)
    train_summary = json.loads(summary_path.read_text())
    test = evaluate(train_dir, load_test_set(), train_dir / "test_errors.json", check_model_file=True)
    def volumes(structures):
        return np.array([volume_per_fu(a.cell, len(a), atoms_per_fu=ATOMS_PER_FU) for a in structures])

    v_md, v_data = volumes(frames), volumes(dataset)
    result = {
        "benchmark": "mil53_metadynamics", "size": args.size, "seed": args.seed,
        "commit": git_commit(), "tag": tag, "campaign": args.campaign,
        "model_from": str(model_dir),
        "selection": args.selection, "metad": METAD,
        "runs": [{k: s.get(k) for k in ("temperature_K", "pressure_bar", "steps_done", "error",
                                        "wall_s", "ms_per_step", "volume_per_fu", "n_frames",
                                        "n_hills") if k in s} for s in summaries],
        "n_frames": len(frames), "n_selected": len(selected), "n_labelled": len(got["kept"]),
        "n_failed": len(got["failures"]), "n_dropped": len(got["dropped"]),
        "n_dataset": len(dataset),
        "volumes": {"md_frames": state_summary(v_md), "dataset": state_summary(v_data)},
        "test_errors_final": test,
        "valid_errors": train_summary.get("errors_valid"),
        "costs_s": {"md_wall_sum": float(sum(s.get("wall_s") or 0.0 for s in summaries)),
                    "selection": selection["wall_s"], "reference_cpu": got["reference_s"],
                    "reference_wall_last_call": info["wall_s"],
                    "training": train_summary.get("wall_s")},
    }
    path = Path(args.results) if args.results else (
        out / "results.json" if args.size == "tiny" else RESULTS / f"mil53_metadynamics_{args.size}_{tag}.json")
    path.write_text(json.dumps(result, indent=1, default=float))
    a = test["all"]
    print(f"metadynamics baseline ({args.size}, {len(dataset)} labels): energy "
          f"{a['energy_rmse_meV_atom']:.2f} meV/atom, forces {a['forces_rmse']:.3f} eV/Å, stress "
          f"{a['stress_rmse_GPa']:.3f} GPa; MD frames by state {result['volumes']['md_frames']['fractions']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
