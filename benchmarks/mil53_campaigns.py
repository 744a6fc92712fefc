"""MIL-53(Al): active learning with unbiased NPT, biased forces, and biased forces + stress.

Campaigns are the configs in ``benchmarks/mil53/campaigns/mil53_<name>.yaml``, written by
``python -m benchmarks.mil53.make_campaigns``: 5 samplers x 2 temperatures x 2 pressure settings.
Names: ``<sampler>_<T>_<p>`` with sampler ``unbiased`` (tau_F = tau_sigma = 0),
``bias_forces`` (tau_F = 0.25), ``bias_forces_stress`` (tau_F = tau_sigma = 0.25),
``bias_stress`` (tau_F = 0, tau_sigma = 0.25: not in the paper), ``bias_forces005_stress``
(tau_F = 0.05, the reference code's default, tau_sigma = 0.25), T ``300K`` or
``600K`` and p ``p0`` (0 bar) or ``pm2500`` (+2500 / -2500 bar alternating between walkers).
All of them: GFN1-xTB labels of the 2x1x1 cell (152 atoms), start = the relaxed large-pore (lp)
structure + 7 strained/shifted copies, LAMMPS NPT walkers (Nose-Hoover + Parrinello-Rahman
``tri``), posterior uncertainty on sketched gradient features, max_det batches of 8, float32
training with learning rate 3e-2 decaying to 3e-4 (the alanine result of docs/accuracy.md; the
campaign configs carry it). Default set: the paper's three samplers at 300 K with +-2500 bar
(size ``uniform``: ``bias_stress``, ``unbiased``, ``bias_forces_stress``); the others are
selectable with ``--campaigns``. The metadynamics baseline is not an AL campaign (see
``benchmarks.mil53_metadynamics`` and docs/benchmarks_mil53.md).

Per campaign and seed it runs ``ubmd al run CONFIG --output DIR`` (rerunning the same command
continues a partly finished campaign), then measures

* the cell volume per formula unit (Al4(OH)4(BDC)4, 76 atoms; V / 2 for the 152-atom cell) of
  ALL traced walker frames (the thermo ``Volume`` every ``walkers.log_every`` steps, stored in
  each walker's ``trace.npz``; the walker's ``log.lammps`` as a fallback), accumulated over
  rounds: fraction of frames per pore state (closed V < 1150 A^3, the GFN1-xTB cp minimum is at
  747 and the experimental np near 950-990; intermediate 1150-1350; large 1350-1700, the lp
  minimum is at 1486; expanded > 1700, beyond lp), whether each state was visited, a histogram;
  the same for the labelled training set of the last round;
* energy (meV/atom), force (eV/A) and stress (GPa, all 9 components) RMSE of the final model and
  of a few earlier rounds' models on ``examples/mil53/data/mil53_test_gfn1.extxyz`` (71
  perturbed and interpolated frames spanning both states) and ``mil53_test300K_gfn1.extxyz`` (72
  frames of 300 K MD in the large, intermediate and closed pore), overall ("all": both files) and
  per ``kind`` (``perturb_lp``, ``perturb_np``, ``interp``, ``md300_large``,
  ``md300_intermediate``, ``md300_closed``),
  float64 from ``members.pt``; on 3 frames checked against the model file
  (``ubmd.evaluation.score_members``);
* stage wall times per round (reference, training, sampling, selection) from the round
  summaries, MD steps and ms per MD step of the walkers.

Sizes (``--size``, ``--quick`` = ``--size quick``), presets in SIZES (dotted keys on top of the
campaign config). Cost estimate for this 2-core machine from measured per-item costs:

* a GFN1-xTB label of 152 atoms: 5.5 s on an idle core, 9.4 s on the loaded machine (tiny smoke
  run: 8 labels, 75 s of label time, 38 s wall with 2 workers);
* training: the per-round cap plus ~2-5 s (statistics, uncertainty fit, calibration, export);
* LAMMPS walker, 152 atoms, float64 [128, 128] model with posterior sketch uncertainty: 3-5 s
  start-up; ~30-50 ms per MD step on an idle core (estimated by scaling the 4-8 ms/step of the
  22-atom alanine campaigns, docs/benchmarks.md); the tiny smoke run measured 110-190 ms per step
  (LAMMPS loop time, walkers of 10-27 steps, warm-up included) on the loaded machine at nice 10;
  2 walkers at a time;
* walkers of an early model stop within 10-30 steps even at 5 eV/A (8-label model: calibration
  factor ~80), so a round then adds one label per walker, not B = 8.

* ``tiny`` (smoke test; default campaign ``bias_forces_stress_300K_pm2500`` only): label budget
  16, at most 3 rounds, 2 walkers (one at +2500, one at -2500 bar) of at most 200 steps, a
  candidate every 50 steps, stop threshold max(5 eV/A, 2 x the model's level), 20 s training
  cap. Early walkers give 2 labels per round, so it ends at 12 labels after 3 rounds: ~40 s labelling + 3 x 25 s training
  + 2 x 11 s sampling + ~40 s analysis = about 3 min loaded.
* ``quick`` (the three default campaigns): 24 labels = 3 rounds of B = 8, 8 walkers of at most
  600 steps and 20 s, a candidate every 50 steps, threshold max(5 eV/A, 2 x the model's level)
  (5 eV/A as for the alanine quick
  size: with a 20 s training cap the paper's 1.5 eV/A stops walkers within a few steps), 20 s
  training cap. Per campaign (loaded): labels 24 x 9.4 s / 2 = 115 s, training 3 x 25 s,
  sampling 2 x 4 waves x ~5-25 s = 40-200 s, analysis ~30 s: 4-7 min; 12-20 min for the three
  loaded, 8-12 min idle.
* ``full`` (the three default campaigns, seed 0): 128 labels, 4 walkers (2 at +2500, 2 at
  -2500 bar) of at most 10 000 steps (5 ps) and 60 s wall time each (~0.6-1 ps idle),
  a candidate every 50 steps, threshold max(1.5 eV/A, 2 x the model's own level:
  ``walkers.threshold_relative`` 2 from the campaign configs), 120 s compiled training per round
  (max 1000 epochs). Early rounds add 4-5 labels (the walkers stop after 20-100 steps), later
  ones B = 8: about 20 rounds. Per round at most: labels 8 x 5.5-9.4 s / 2 = 25-40 s, training
  ~125 s, sampling 2 waves x (60 + 5) s = 130 s, selection ~10 s: <= 5 min; early rounds
  ~3 min. So ~70-90 min per campaign idle and 3.5-4.5 h for the three run one after the other
  (more on a loaded machine; the walkers' wall cap keeps sampling bounded). The first full run
  (v1: 90 s eager training, a candidate every 100 steps, absolute threshold) stalled with
  walkers stopping within 1-21 steps; docs/benchmarks_mil53.md section 5 has the diagnosis.
  Against the paper: 512 labels and 8 walkers of 20 000 steps; the configs' own settings (``ubmd al run benchmarks/mil53/campaigns/<file>``) are that size.
* ``full_loose`` (default: bias forces + stress, then unbiased, at 300 K, +-2500 bar): ``full``
  with a stop threshold of max(5 eV/A, 2 x the model's level), so that walkers run to their 60 s
  wall cap (~400-600 steps) instead of stopping after 50-200 steps on 1.5 eV/A.
* ``uniform`` (issue #24's protocol; default: ``bias_stress``, ``unbiased``,
  ``bias_forces_stress`` at 300 K, +-2500 bar, seeds 0 and 1): nothing depends on the machine's
  load -- every round trained for exactly 150 epochs (compiled, no wall cap, no early stop),
  walkers by steps only: 4 walkers of 3000 steps (1.5 ps: bias-stress walkers closed the pore
  within that in the walker measurement, ``benchmarks.mil53.walker_breathing``), a candidate
  every 100 steps, the configs' stop at max(1.5 eV/A, 2 x the model's level) with 10 reflections;
  128 labels. About 10-15 min per round on 2 busy cores, so 2-4 h per campaign.

    python -m benchmarks.mil53_campaigns --size tiny                      # smoke test, minutes
    python -m benchmarks.mil53_campaigns --quick                          # 3 campaigns, 10-20 min
    nohup nice -n 10 python -m benchmarks.mil53_campaigns --size full > runs/mil53_full.out &
    python -m benchmarks.mil53_campaigns --size full --campaigns unbiased_600K_pm2500
    python -m benchmarks.mil53_campaigns --size full --analyze-only       # re-measure, no new MD
    python -m benchmarks.mil53_campaigns --size full_loose                # full, 5 eV/A stop
    python -m benchmarks.mil53_campaigns --size full --dry-run            # the merged configs only
    python -m benchmarks.mil53_campaigns --size uniform --campaigns bias_stress_300K_pm2500 --seeds 0

Writes ``benchmarks/results/mil53_campaigns_<size>.json`` and ``docs/figures/mil53_<size>_*.png``
(tiny: both under runs/mil53_campaigns/tiny/); campaign directories under
``runs/mil53_campaigns/<size>/`` (not in git). Results of campaigns measured by earlier calls
(other ``--campaigns``) are kept in the JSON.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import yaml

from ubmd.al.archive import (archived_traces, campaign_dataset, campaign_finished, load_rounds,
                             walker_md_costs, walker_traces, write_archive)
from ubmd.analysis import n_formula_units, shared_histograms, volume_per_fu
from ubmd.analysis import state_summary as summary_of_states
from ubmd.evaluation import score_members

from . import FIGURES, RESULTS, ROOT
from .campaign_common import (analyze_started, archive_dir, cached, curve_rounds, driver_parser,
                              dry_run, merged_campaigns, output_paths, results_record,
                              run_campaigns, run_dir, run_sized_campaign, seed_stat, sized_config,
                              with_traces, with_label_budget, write_results)

CAMPAIGNS = ROOT / "benchmarks" / "mil53" / "campaigns"
DATA = ROOT / "examples" / "mil53" / "data"
TEST_SET = DATA / "mil53_test_gfn1.extxyz"
# thermal frames per pore state (benchmarks.mil53.make_test_set_300K), scored with the set above
TEST_SET_300K = DATA / "mil53_test300K_gfn1.extxyz"

ALL = tuple(sorted(p.stem[len("mil53_"):] for p in CAMPAIGNS.glob("mil53_*.yaml")))
MAIN = ("unbiased_300K_pm2500", "bias_forces_300K_pm2500", "bias_forces_stress_300K_pm2500")
DEFAULT_CAMPAIGNS = {"tiny": ("bias_forces_stress_300K_pm2500",), "quick": MAIN, "full": MAIN,
                     "full_loose": ("bias_forces_stress_300K_pm2500", "unbiased_300K_pm2500"),
                     "uniform": ("bias_stress_300K_pm2500", "unbiased_300K_pm2500",
                                 "bias_forces_stress_300K_pm2500")}

ATOMS_PER_FU = 76  # Al4(OH)4(BDC)4
# volume per formula unit (A^3): GFN1-xTB minima of the 2x1x1 cell (docs/benchmarks_mil53.md)
REF_VOLUMES = {"cp": 747.5, "lp": 1486.4}
# pore states by volume per unit; the boundaries of tests/test_mil53_data.py (NP_MAX, LP_MIN)
CLOSED_MAX, LARGE_MIN, LARGE_MAX = 1150.0, 1350.0, 1700.0
STATES = ("closed", "intermediate", "large", "expanded")
HIST_RANGE, HIST_BINS = (600.0, 1800.0), 60  # 20 A^3 bins
EV_A3_TO_GPA = 160.21766208  # validation stress errors of the round summaries (eV/A^3) in GPa
KINDS = ("perturb_lp", "perturb_np", "interp")
KINDS_300K = ("md300_large", "md300_intermediate", "md300_closed")
if TEST_SET_300K.exists():
    KINDS = KINDS + KINDS_300K

# Size presets: overrides applied on top of the campaign config (dotted keys); see the docstring.
SIZES = {
    "tiny": {"label_budget": 16, "max_rounds": 3, "walkers.n_walkers": 2, "walkers.max_steps": 200,
             "walkers.sample_every": 50, "walkers.log_every": 10, "walkers.threshold": 5.0,
             "walkers.max_time_s": 60, "training.max_time_s": 20, "training.max_epochs": 300,
             "training.patience": 100},
    "quick": {"label_budget": 24, "walkers.n_walkers": 8, "walkers.max_steps": 600,
              "walkers.sample_every": 50, "walkers.log_every": 10, "walkers.threshold": 5.0,
              "walkers.max_time_s": 20, "training.max_time_s": 20, "training.max_epochs": 1000,
              "training.patience": 200},
    "full": {"label_budget": 128, "walkers.n_walkers": 4, "walkers.max_steps": 10000,
             "walkers.sample_every": 50, "walkers.log_every": 10, "walkers.max_time_s": 60,
             "training.max_time_s": 120, "training.max_epochs": 1000, "training.patience": 200,
             "training.compile": True},
}
# full with a loose stop (5 eV/A, as quick): walkers run to their wall cap, so a lineage covers
# ~0.3 ps per round instead of 0.03-0.5 ps in all; tests whether the stop rule is what kept the
# full campaigns in the large-pore state (docs/benchmarks_mil53.md)
SIZES["full_loose"] = dict(SIZES["full"], **{"walkers.threshold": 5.0})
# uniform: issue #24's protocol, shared with the alanine issue #23 -- nothing depends on the
# machine's load (training by a fixed epoch budget, no wall caps anywhere); walkers of 1.5 ps
# (the walker measurement: bias-stress walkers under +2500 bar leave the large pore after
# 0.46-0.53 ps and reach the closed one after 1.1-1.2 ps), the campaign configs' stop at
# max(1.5 eV/A, 2 x the model's own level) with 10 reflections (a crossing frame goes to the
# pool and the walker goes on from its last sample)
SIZES["uniform"] = {"label_budget": 128, "walkers.n_walkers": 4, "walkers.max_steps": 3000,
                    "walkers.sample_every": 100, "walkers.log_every": 10,
                    "walkers.reflections": 10, "walkers.max_time_s": None,
                    "training.max_time_s": None, "training.max_epochs": 150,
                    "training.patience": 150, "training.compile": True}
DEFAULT_SEEDS = {"tiny": [0], "quick": [0], "full": [0], "full_loose": [0], "uniform": [0, 1]}
# models evaluated for the error-vs-labels curves (the final model is always evaluated)
CURVE_POINTS = {"tiny": 2, "quick": 3, "full": 5, "full_loose": 5, "uniform": 8}


# ---------------------------------------------------------------------------------- configs
def campaign_config(name: str, size: str, seed: int) -> dict:
    """Merged config: campaign file + size preset + seed; the start structure path made absolute."""
    path = CAMPAIGNS / f"mil53_{name}.yaml"
    if not path.exists():
        raise ValueError(f"unknown campaign {name!r}: no {path}")
    cfg = yaml.safe_load(path.read_text())
    return sized_config(cfg, SIZES[size], path.parent, seed)


def run_campaign(name: str, size: str, seed: int, runs: Path) -> dict:
    return run_sized_campaign(campaign_config(name, size, seed), name, size, seed, runs)


# ---------------------------------------------------------------------------------- volumes
def pore_bounds(closed_max: float = CLOSED_MAX, large_min: float = LARGE_MIN,
                large_max: float = LARGE_MAX) -> tuple:
    """The bounds of STATES for ``ubmd.analysis.classify``: closed < closed_max <= intermediate <
    large_min <= large <= large_max < expanded (large_max belongs to large)."""
    if not closed_max < large_min < large_max:
        raise ValueError(f"need closed_max < large_min < large_max, got {closed_max}, {large_min}, {large_max}")
    return (closed_max, large_min, float(np.nextafter(large_max, np.inf)))


def state_summary(volumes, closed_max: float = CLOSED_MAX, large_min: float = LARGE_MIN,
                  large_max: float = LARGE_MAX) -> dict:
    """Counts, fractions and visited flags of the pore states, plus min/mean/max (A^3 per unit)."""
    return summary_of_states(volumes, pore_bounds(closed_max, large_min, large_max), STATES)


def volume_histograms(samples: dict, bins: int = HIST_BINS, value_range=HIST_RANGE) -> dict:
    """Densities and counts of each campaign's volumes on shared bins ({} without any)."""
    return shared_histograms(samples, bins=bins, value_range=value_range, skip_empty=True)


def traced_volumes(out: Path, rounds: list[dict], n_fu: int) -> dict:
    """{round: {walker index: volumes per unit of its traced frames}} (trace.npz, else the
    walker's log.lammps)."""
    return {r: {w: v / n_fu for w, v in ws.items()}
            for r, ws in walker_traces(out, "volume", rounds, log_column="Volume").items()}


def campaign_traced_volumes(name: str, size: str, seed: int, runs: Path, n_atoms: int) -> dict:
    """``traced_volumes`` of a campaign from its directory, else from its archive ({} if none)."""
    return archived_traces(run_dir(runs, size, name, seed), archive_dir("mil53_campaigns", size, name, seed, runs),
                           lambda out, rounds: traced_volumes(out, rounds, n_formula_units(n_atoms, ATOMS_PER_FU)))


def all_volumes(traced: dict) -> np.ndarray:
    """The volumes of ``traced_volumes`` output, all rounds and walkers in one array."""
    parts = [x for ws in traced.values() for x in ws.values()]
    return np.concatenate(parts) if parts else np.array([])


def campaign_volumes(name: str, size: str, seed: int, runs: Path, n_atoms: int) -> np.ndarray:
    """All traced volumes per unit of a campaign."""
    return all_volumes(campaign_traced_volumes(name, size, seed, runs, n_atoms))


def dataset_volumes(name: str, size: str, seed: int, runs: Path) -> np.ndarray:
    """Volumes per unit of the labelled training set of the last round (its ``dataset.extxyz``,
    else the archive's)."""
    frames = campaign_dataset(run_dir(runs, size, name, seed), archive_dir("mil53_campaigns", size, name, seed, runs))
    return np.array([volume_per_fu(a.cell, len(a), atoms_per_fu=ATOMS_PER_FU) for a in frames])


# ---------------------------------------------------------------------------------- errors
def load_test_set() -> list:
    from ubmd.data import read_structures

    frames = read_structures(TEST_SET)
    return frames + (read_structures(TEST_SET_300K) if TEST_SET_300K.exists() else [])


def _kind_counts(frames) -> dict:
    counts = {"all": len(frames)}
    for f in frames:
        k = f.info.get("kind", "?")
        counts[k] = counts.get(k, 0) + 1
    return counts


def evaluate(train_dir: Path, frames, cache: Path, check_model_file: bool = False) -> dict:
    """Test errors of one round's model (``train_dir/members.pt``, batched float64), overall and
    per ``kind``: energy (meV/atom), forces (eV/A), stress (GPa, all 9 components); cached in
    ``cache``. With ``check_model_file`` the first 3 frames are also run through the model file
    and both RMSEs kept (``ubmd.evaluation.score_members``)."""
    import torch

    torch.set_num_threads(1)
    return cached(cache, lambda: score_members(train_dir, frames, group_key="kind", stress=True,
                                               check_model_file=3 if check_model_file else 0),
                  fresh=lambda res: ((not check_model_file or "check_model_file" in res)
                                     and all(res.get(k, {}).get("n") == n
                                             for k, n in _kind_counts(frames).items())))


# ---------------------------------------------------------------------------------- analysis
def analyze_campaign(name: str, size: str, seed: int, runs: Path, frames, thresholds: dict) -> dict:
    out = run_dir(runs, size, name, seed)
    rounds = load_rounds(out)
    if not rounds:
        return {"error": f"no finished round in {out}"}
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    from ubmd.data import read_structures

    n_atoms = len(read_structures(cfg["initial"]["structures"], index="0")[0])
    n_fu = n_formula_units(n_atoms, ATOMS_PER_FU)
    vols = traced_volumes(out, rounds, n_fu)
    per_round, seen = [], []
    first_visit = {}
    for s in rounds:
        t = s.get("timings_s") or {}
        walkers = s.get("walkers") or []
        this = np.concatenate(list(vols.get(s["round"], {}).values())) if s["round"] in vols else np.array([])
        seen.append(this)
        this_sum = state_summary(this, **thresholds)
        for st, hit in this_sum["visited"].items():
            if hit and st not in first_visit:
                first_visit[st] = {"round": s["round"], "labels_used": s["labels_used"]}
        ev = s.get("errors_valid") or {}
        steps = [w.get("n_steps") or 0 for w in walkers]
        wall = [w.get("wall_s") or 0.0 for w in walkers]
        per_round.append({
            "round": s["round"], "labels_used": s["labels_used"], "n_dataset": s["n_dataset"],
            "timings_s": {k: t.get(k) for k in ("reference", "reference_wall", "training",
                                                 "sampling", "selection")},
            "valid_energy_rmse_meV_atom": 1000 * ev["energy_rmse"] if "energy_rmse" in ev else None,
            "valid_forces_rmse": ev.get("forces_rmse"),
            "valid_stress_rmse_GPa": EV_A3_TO_GPA * ev["stress_rmse"] if "stress_rmse" in ev else None,
            "calibration_atomic": (s.get("calibration") or {}).get("atomic"),
            "n_pool": s.get("n_pool"),
            "walker_steps": [w.get("n_steps") for w in walkers],
            "walker_stops": [w.get("stop_reason") for w in walkers],
            "walker_pressure_bar": [w.get("pressure_bar") for w in walkers],
            "walker_final_volume_per_fu": [w["final_volume"] / n_fu if w.get("final_volume") else None
                                           for w in walkers],
            "md_wall_ms_per_step": 1000 * sum(wall) / sum(steps) if sum(steps) else None,
            "traced_frames": int(len(this)),
            "states_this_round": this_sum["fractions"],
            "visited_cumulative": state_summary(np.concatenate(seen), **thresholds)["visited"],
        })
    last = rounds[-1]
    all_v = np.concatenate(seen) if seen else np.array([])
    write_archive(out, archive_dir("mil53_campaigns", size, name, seed, runs), vols)
    data_v = dataset_volumes(name, size, seed, runs)
    final_dir = out / f"round_{last['round']:03d}" / "train"
    final = evaluate(final_dir, frames, final_dir / "test_errors.json", check_model_file=True) \
        if (final_dir / "members.pt").exists() else None
    curve = []
    for r in curve_rounds(len(rounds), CURVE_POINTS[size]):
        m = out / f"round_{r:03d}" / "train"
        if (m / "members.pt").exists():
            curve.append({"round": r, "labels": rounds[r]["labels_used"],
                          **evaluate(m, frames, m / "test_errors.json", check_model_file=r == last["round"])})
    stage = {k: float(np.nansum([(p["timings_s"].get(k) or 0.0) for p in per_round]))
             for k in ("reference", "reference_wall", "training", "sampling", "selection")}
    md_steps = int(sum(sum(x for x in p["walker_steps"] if x) for p in per_round))
    w = cfg["walkers"]
    return {
        "directory": str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out),
        "finished": campaign_finished(out),
        "n_rounds": len(rounds), "labels_used": last["labels_used"], "n_dataset": last["n_dataset"],
        "engine": next((s.get("engine") for s in rounds if s.get("engine")), None),
        "n_atoms": n_atoms,
        "settings": {"temperature_K": w["temperature"], "pressure_bar": w["pressure"],
                     "tau_forces": w["tau_forces"], "tau_stress": w.get("tau_stress", 0.0),
                     "weights": w.get("weights"), "uncertainty": cfg["uncertainty"]["kind"],
                     "features": cfg["uncertainty"].get("features"),
                     "selection": cfg["selection"]["method"], "batch_size": cfg["selection"]["batch_size"],
                     "n_walkers": w["n_walkers"], "max_steps": w["max_steps"],
                     "max_time_s": w.get("max_time_s"), "threshold": w["threshold"],
                     "threshold_relative": w.get("threshold_relative"),
                     "sample_every": w["sample_every"], "log_every": w["log_every"],
                     "timestep_fs": w["timestep"], "label_budget": cfg["label_budget"],
                     "hidden": cfg["model"]["hidden"], "lr": cfg["training"]["lr"],
                     "lr_final": cfg["training"]["lr_final"], "train_cap_s": cfg["training"].get("max_time_s")},
        "volumes": {"traced": state_summary(all_v, **thresholds), "first_visit": first_visit,
                    "dataset": state_summary(data_v, **thresholds),
                    "md_steps": md_steps, "md_time_ps": md_steps * w["timestep"] / 1000.0},
        "costs": {"stage_totals_s": stage,
                  "campaign_wall_s": float(sum(stage[k] for k in ("reference_wall", "training",
                                                                   "sampling", "selection"))),
                  **walker_md_costs(out, rounds, md_steps)},
        "test_errors_final": final,
        "test_errors_curve": curve,
        "rounds": per_round,
    }


# ---------------------------------------------------------------------------------- figures
def _label(name: str) -> str:
    return name.replace("_pm2500", " ±2500 bar").replace("_p0", " 0 bar").replace("_", " ")


def figures(results: dict, size: str, runs: Path, figdir: Path) -> list[str]:
    from matplotlib.figure import Figure

    figdir.mkdir(parents=True, exist_ok=True)
    names = [n for n in results["campaigns"] if "0" in results["campaigns"][n]
             and "volumes" in results["campaigns"][n]["0"]]
    if not names:
        return []
    all_names = names
    traced = {n: campaign_traced_volumes(n, size, 0, runs, results["campaigns"][n]["0"]["n_atoms"])
              for n in all_names}
    names, part = with_traces(all_names, traced, "traced volumes", "volume figures")
    paths = []
    th = results["pore_states"]
    if names:
        # 1. volume histograms (seed 0; all traced frames; rug = labelled training set)
        fig = Figure(figsize=(8.0, 1.9 * len(names) + 0.6), constrained_layout=True)
        axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
        for ax, name in zip(axes, names):
            res = results["campaigns"][name]["0"]
            allv = all_volumes(traced[name])
            ax.axvspan(HIST_RANGE[0], th["closed_max"], color="C0", alpha=0.08)
            ax.axvspan(th["large_min"], th["large_max"], color="C1", alpha=0.08)
            if len(allv):
                ax.hist(np.clip(allv, *HIST_RANGE), bins=np.linspace(*HIST_RANGE, HIST_BINS + 1),
                        density=True, color="0.3")
            dv = dataset_volumes(name, size, 0, runs)
            ymax = ax.get_ylim()[1]
            ax.plot(np.clip(dv, *HIST_RANGE), np.full(len(dv), 0.97 * ymax), "|", color="C3", ms=8,
                    label="labelled")
            for k, x in REF_VOLUMES.items():
                ax.axvline(x, ls="--", color="k", lw=0.8)
                ax.text(x, 0.8 * ymax, f" {k}", fontsize=8)
            f = res["volumes"]["traced"]["fractions"]
            ax.set_title(f"{_label(name)}: {res['volumes']['traced']['n']} frames, closed "
                         f"{(f['closed'] or 0):.2f}, interm. {(f['intermediate'] or 0):.2f}, large "
                         f"{(f['large'] or 0):.2f}, expanded {(f['expanded'] or 0):.2f}", fontsize=8)
            ax.set_ylabel("density")
        axes[-1].set_xlabel("volume per Al4(OH)4(BDC)4 unit (Å³); clipped to the axis range")
        axes[0].legend(fontsize=7, loc="upper left")
        p = figdir / f"mil53_{size}_volume_hist{part}.png"
        fig.savefig(p, dpi=110)
        paths.append(str(p))
        # 2. traced volumes by round, colour = walker pressure
        fig = Figure(figsize=(4.0 * len(names), 3.4), constrained_layout=True)
        axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
        for ax, name in zip(axes, names):
            res = results["campaigns"][name]["0"]
            v = traced[name]
            for s in res["rounds"]:
                pr = dict(enumerate(p or 0.0 for p in s.get("walker_pressure_bar") or []))
                for wi, x in v.get(s["round"], {}).items():
                    col = "C3" if pr.get(wi, 0.0) > 0 else ("C0" if pr.get(wi, 0.0) < 0 else "0.4")
                    n_w = max(1, len(pr))  # walker wi's frames in time order in its slot of the round
                    xs = s["round"] - 0.4 + 0.8 * (wi + 0.9 * np.linspace(0, 1, len(x))) / n_w
                    ax.plot(xs, x, ".", ms=2, color=col)
            for x in REF_VOLUMES.values():
                ax.axhline(x, ls="--", color="k", lw=0.8)
            ax.axhspan(th["closed_max"], th["large_min"], color="0.5", alpha=0.1)
            ax.set(title=_label(name), xlabel="AL round (points: walkers in time order)",
                   ylim=(HIST_RANGE[0], HIST_RANGE[1]))
        axes[0].set_ylabel("volume per unit (Å³); red +p, blue -p")
        p = figdir / f"mil53_{size}_volume_by_round{part}.png"
        fig.savefig(p, dpi=110)
        paths.append(str(p))
    names = all_names
    # 3. test errors vs labels, per kind
    fig = Figure(figsize=(3.3 * (1 + len(KINDS)), 8), constrained_layout=True)
    axes = fig.subplots(3, 1 + len(KINDS))
    metrics = (("energy_rmse_meV_atom", "energy RMSE (meV/atom)"), ("forces_rmse", "force RMSE (eV/Å)"),
               ("stress_rmse_GPa", "stress RMSE (GPa)"))
    styles = ("-o", "--s", ":^", "-.v")  # one line style per campaign seed
    for k, name in enumerate(names):
        for n_seed, (seed, res) in enumerate(sorted(results["campaigns"][name].items())):
            cur = res.get("test_errors_curve") or []
            x = [c["labels"] for c in cur]
            for j, kind in enumerate(("all",) + KINDS):
                for i, (q, _) in enumerate(metrics):
                    y = [c[kind][q] if kind in c else np.nan for c in cur]
                    axes[i, j].plot(x, y, styles[n_seed % len(styles)], ms=3, color=f"C{k}",
                                    label=f"{_label(name)}, seed {seed}" if i == 0 and j == 0
                                    else None)
    for j, kind in enumerate(("all",) + KINDS):
        axes[0, j].set_title(f"test set: {kind}")
        for i, (_, lab) in enumerate(metrics):
            axes[i, j].set(yscale="log", ylabel=lab if j == 0 else None)
        axes[2, j].set_xlabel("labels")
    axes[0, 0].legend(fontsize=7)
    p = figdir / f"mil53_{size}_rmse_vs_labels.png"
    fig.savefig(p, dpi=110)
    paths.append(str(p))
    return paths


# ---------------------------------------------------------------------------------- main
def summarize(campaigns: dict) -> dict:
    """Mean and std over seeds of the headline numbers."""
    out = {}
    for name, by_seed in campaigns.items():
        vals = [v for v in by_seed.values() if "volumes" in v]
        if not vals:
            continue

        def stat(get):
            return seed_stat([get(v) for v in vals])

        s = {"labels": stat(lambda v: v["labels_used"]), "rounds": stat(lambda v: v["n_rounds"]),
             "md_time_ps": stat(lambda v: v["volumes"]["md_time_ps"])}
        for st in STATES:
            s[f"fraction_{st}"] = stat(lambda v, st=st: v["volumes"]["traced"]["fractions"][st])
            s[f"visited_{st}"] = stat(lambda v, st=st: float(v["volumes"]["traced"]["visited"][st]))
            s[f"dataset_fraction_{st}"] = stat(lambda v, st=st: v["volumes"]["dataset"]["fractions"][st])
        for kind in ("all",) + KINDS:
            for q in ("energy_rmse_meV_atom", "forces_rmse", "forces_max", "stress_rmse_GPa"):
                s[f"{kind}_{q}"] = stat(lambda v, kind=kind, q=q: (
                    ((v.get("test_errors_final") or {}).get(kind) or {}).get(q)))
        for k in ("reference_wall", "training", "sampling", "selection"):
            s[f"time_{k}_s"] = stat(lambda v, k=k: v["costs"]["stage_totals_s"][k])
        s["time_total_s"] = stat(lambda v: v["costs"]["campaign_wall_s"])
        s["md_loop_ms_per_step"] = stat(lambda v: v["costs"].get("md_loop_ms_per_step"))
        out[name] = s
    return out


def print_table(results: dict) -> None:
    print(f"\nMIL-53(Al) campaigns, size {results['size']}, seeds {results['seeds']}")
    print(f"{'campaign':32s} {'labels':>6s} {'MD ps':>6s} | {'closed':>6s} {'interm':>6s} {'large':>6s} "
          f"{'expand':>6s} | {'E meV/at':>8s} {'F eV/Å':>7s} {'S GPa':>6s} | F {' / '.join(KINDS)} | "
          f"{'wall s':>7s} {'ms/step':>7s}")

    def f(x, fmt):
        return format(x, fmt) if x is not None else "-".rjust(len(format(0.0, fmt)))

    for name, s in results["summary"].items():
        m = {k: v["mean"] for k, v in s.items()}
        row = (f"{name:32s} {f(m['labels'], '6.0f')} {f(m['md_time_ps'], '6.2f')} | "
               + " ".join(f(m[f"fraction_{st}"], "6.3f") for st in STATES)
               + f" | {f(m['all_energy_rmse_meV_atom'], '8.2f')} {f(m['all_forces_rmse'], '7.3f')} "
               f"{f(m['all_stress_rmse_GPa'], '6.3f')} | "
               + " / ".join(f(m[f"{k}_forces_rmse"], "5.3f") for k in KINDS)
               + f" | {f(m['time_total_s'], '7.0f')} {f(m['md_loop_ms_per_step'], '7.1f')}")
        print(row)
    print("(fractions of traced walker frames per pore state, by volume per unit: closed < "
          f"{results['pore_states']['closed_max']:g} <= intermediate < {results['pore_states']['large_min']:g}"
          f" <= large <= {results['pore_states']['large_max']:g} < expanded; errors on "
          f"{TEST_SET.name} (+ {TEST_SET_300K.name}); wall = sum of stage times; ms/step = LAMMPS loop time per MD step)")


def main(argv=None) -> int:
    p = driver_parser(__doc__, SIZES, "24 labels, 10-20 min for the three campaigns", ALL,
                      f"default: {' '.join(MAIN)} (tiny: {DEFAULT_CAMPAIGNS['tiny'][0]})",
                      ROOT / "runs" / "mil53_campaigns",
                      "default benchmarks/results/mil53_campaigns_<size>.json; tiny: under --runs")
    p.add_argument("--closed-max", type=float, default=CLOSED_MAX, help="A^3 per unit")
    p.add_argument("--large-min", type=float, default=LARGE_MIN, help="A^3 per unit")
    p.add_argument("--large-max", type=float, default=LARGE_MAX, help="A^3 per unit")
    a = p.parse_args(argv)
    SIZES[a.size] = with_label_budget(SIZES, a.size, a.label_budget)  # this call's preset
    seeds = a.seeds if a.seeds is not None else DEFAULT_SEEDS[a.size]
    names = list(a.campaigns or DEFAULT_CAMPAIGNS[a.size])
    thresholds = {"closed_max": a.closed_max, "large_min": a.large_min, "large_max": a.large_max}
    try:
        pore_bounds(**thresholds)
    except ValueError as exc:
        p.error(str(exc))
    runs = Path(a.runs)
    if a.dry_run:
        return dry_run(names, seeds, a.size, SIZES[a.size], runs,
                       lambda name, seed: campaign_config(name, a.size, seed))
    t_start = time.perf_counter()
    commands, errors, run_s = ({}, {}, 0.0) if a.analyze_only else run_campaigns(
        names, seeds, lambda name, seed: run_campaign(name, a.size, seed, runs))
    frames = load_test_set()
    campaigns = analyze_started(names, seeds, runs, a.size, lambda name, seed: analyze_campaign(
        name, a.size, seed, runs, frames, thresholds),
        SIZES[a.size].get("label_budget"))
    results_path, figdir = output_paths("mil53_campaigns", a.size, runs, a.results, RESULTS, FIGURES,
                                         a.label_budget)
    old, merged = merged_campaigns(results_path, campaigns)
    vols = {name: campaign_volumes(name, a.size, 0, runs, res["0"]["n_atoms"])
            for name, res in merged.items() if "0" in res and "volumes" in res["0"]}
    hist = volume_histograms({k: v for k, v in vols.items() if len(v)})
    prev = old.get("volume_histograms_seed0") or {}
    lost = {k: v for k, v in prev.get("campaigns", {}).items() if k in vols and not len(vols[k])}
    if lost:  # campaigns without traces left keep their earlier histograms
        hist = hist or {**prev, "campaigns": {}}
        if hist["edges"] == prev["edges"]:
            both = {**lost, **hist["campaigns"]}
            hist["campaigns"] = {k: both[k] for k in vols if k in both}
    results = results_record(
        "mil53_campaigns", a.size, SIZES[a.size], merged, old, commands, errors, run_s,
        test_set={"file": str(TEST_SET.relative_to(ROOT)), "n": len(frames),
                  "file_300K": (str(TEST_SET_300K.relative_to(ROOT)) if TEST_SET_300K.exists()
                                else None),
                  "kinds": {k: sum(1 for f in frames if f.info.get("kind") == k) for k in KINDS}},
        pore_states={**thresholds, "unit": "A^3 per Al4(OH)4(BDC)4 (76 atoms)",
                     "reference_minima": REF_VOLUMES, "states": list(STATES)},
        volume_metric="cell volume per formula unit of every traced walker frame (thermo "
                      "Volume every walkers.log_every steps, trace.npz), all walkers, "
                      "accumulated over rounds",
        volume_histograms_seed0=hist,
        summary=summarize(merged))
    if not a.no_figures and merged:
        results["figures"] = figures(results, a.size, runs, figdir)
    write_results(results_path, results)
    print_table(results)
    print(f"wrote {results_path} ({time.perf_counter() - t_start:.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
