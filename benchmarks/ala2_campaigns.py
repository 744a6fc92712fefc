"""Alanine dipeptide: active learning with unbiased vs uncertainty-biased MD (paper section 8).

Campaigns (same label budget, same model, uncertainty, selection and stopping rule; only the MD
differs), base configs in ``benchmarks/configs/ala2_<campaign>.yaml`` on top of
``ala2_common.yaml``:

* ``unbiased_300K``  -- Langevin MD at 300 K, tau_F = 0;
* ``biased_300K``    -- uncertainty-biased MD at 300 K, tau_F = 0.25, w_H = 0, posterior
  uncertainty on sketched gradient features (K = 512), max_det, B = 8, 8 walkers;
* ``unbiased_1200K`` -- Langevin MD at 1200 K, tau_F = 0;
* extras (``--extras``): ``biased_300K_lastlayer`` (posterior on last-layer features) and
  ``biased_300K_ensemble`` (3-model ensemble uncertainty), to compare cost and coverage.

Per campaign and seed it runs ``ubmd al run CONFIG --output DIR`` (resumes a partly finished
campaign with the same command), then measures

* Ramachandran coverage: multiscale grid, 2^1..2^5 cells per axis, mean over the 5 levels, over
  ALL MD frames the walkers traced (every ``walkers.log_every`` steps: ``trace.npz`` cvs, the
  finest record the AL loop keeps), accumulated over rounds; cross-checked with
  ``ubmd analyze coverage`` on the walkers' ``trace.lammpstrj`` dumps, which also draws the
  Ramachandran scatter;
* energy/force RMSE and max force error of the final model (and, for the curves, of earlier
  rounds' models) on the 300 K and 600 K test sets (last 200 frames of
  examples/ala2/data/ala2_gfn2_{300,600}K.extxyz) and on the 1200 K frames (all 600);
* wall time of each stage per round (reference, training, sampling, selection) from the AL
  round summaries.

Sizes (``--size``, ``--quick`` = ``--size quick``): ``tiny`` (smoke test, ~2 min),
``quick`` (48 labels = 8 initial + 5 rounds of B = 8, 4 walkers of at most 1000 steps =
0.5 ps, stop threshold 5 eV/Å instead of 1.5 (see SIZES), 15 s training cap per round; about
15-20 min for the three campaigns on a shared 2-core machine) and ``full``
(256 labels, B = 8, 8 walkers, 10 ps walkers as in the paper's 20 000-step cap, seeds 0 1 2).

    python -m benchmarks.ala2_campaigns --quick                     # 3 campaigns, seed 0
    python -m benchmarks.ala2_campaigns --quick --extras            # + last-layer, ensemble
    python -m benchmarks.ala2_campaigns --size full --seeds 0 1 2   # resumable; hours
    python -m benchmarks.ala2_campaigns --quick --analyze-only      # re-measure, no new MD
    python -m benchmarks.ala2_campaigns --size full --dry-run       # the merged configs only

Branch size (``--size branch``): the extras compared on equal footing at a realistic stage. Each
variant continues one finished campaign (default: ``full/biased_300K_s0``) from the data set it
had at round R (default 15: 128 labels): its round 0 relabels the 8 structures the parent
labelled in round R (``initial.structures``, no perturbed copies) on top of the parent's
round R-1 data set (``initial.data``), so every variant starts from the same 128 labels and
the same walker starts as the parent's round R, then runs ``--branch-labels`` (40) more labels
with the full settings and its own uncertainty (``ubmd.al.branch``). Measured as above, plus
the parent's own continuation over the same rounds (a second sample of the sketch setting: seed
noise) and the LAMMPS cost per MD step of each variant's final model, measured in one call,
interleaved (``benchmarks.campaign_md_cost``):

    python -m benchmarks.ala2_campaigns --size branch                         # 3 variants
    python -m benchmarks.ala2_campaigns --size branch --branch-round 20 --branch-labels 24

``--branch-from`` also takes a campaign's archive (``benchmarks/results/archive/ala2_campaigns_
<size>/<campaign>_s<seed>``, written by the analysis, ``ubmd.al.archive``): the same files are cut
from the archived data set into ``runs/unpacked/``. That continues a campaign whose directory is
gone, e.g. seed 2's unbiased 300 K campaign from round 19 (152 + 8 labels) to 256 labels:

    python -m benchmarks.ala2_campaigns --size branch --campaigns unbiased_300K --seeds 2 \
        --branch-from benchmarks/results/archive/ala2_campaigns_full/unbiased_300K_s2 \
        --branch-round 19 --branch-labels 96 --runs runs/continue_s2

``--label-budget N`` runs the size with another label budget; campaigns of the size that
stopped at a smaller one go on from their last round (``ubmd al resume DIR --label-budget N``),
e.g. the uniform campaigns from 128 to 256 labels:

    python -m benchmarks.ala2_campaigns --size uniform --label-budget 256

Writes ``benchmarks/results/ala2_campaigns_<size>.json`` (``..._<size>_<N>labels.json`` with
``--label-budget``) and ``docs/figures/ala2_<size>_*.png`` (tiny: figures stay under runs/);
campaign directories under ``runs/ala2_campaigns/<size>/`` (not in git).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from ubmd.al.archive import (archived_traces, campaign_finished, load_rounds, walker_md_costs,
                             walker_traces, write_archive)
from ubmd.al.branch import branch_settings, check_branch_dir
from ubmd.config import merge
from ubmd.evaluation import score_members

from . import DATA as BENCH_DATA
from . import FIGURES, RESULTS, ROOT
from .campaign_common import (analyze_started, archive_dir, cached, curve_rounds, driver_parser,
                              dry_run, merged_campaigns, output_paths, results_record,
                              run_campaigns, run_dir, run_sized_campaign, seed_stat, sized_config,
                              ubmd_exe, with_label_budget, with_traces, write_results)
from .campaign_md_cost import COST_MODES, lammps_cost

CONFIGS = ROOT / "benchmarks" / "configs"
DATA = ROOT / "examples" / "ala2" / "data"  # the labelled reference MD (test sets)
DIHEDRALS = BENCH_DATA / "ala2" / "dihedrals.json"
UNPACKED = ROOT / "runs" / "unpacked"  # archived parents, unpacked for a branch

MAIN = ("unbiased_300K", "biased_300K", "unbiased_1200K")
EXTRAS = ("biased_300K_lastlayer", "biased_300K_ensemble", "biased_300K_reflect",
          "unbiased_600K_reflect", "biased_600K_reflect")

# Size presets: overrides applied on top of the campaign config (dotted keys).
SIZES = {
    "tiny": {"label_budget": 16, "walkers.n_walkers": 4, "walkers.max_steps": 400,
             "walkers.sample_every": 50, "walkers.max_time_s": 60,
             "training.max_time_s": 10, "training.max_epochs": 500, "training.patience": 100},
    # quick: the paper's threshold (1.5 eV/A) stops every walker within 1-5 steps with models
    # trained for 20 s (validation atomic force errors ~0.4 eV/A at the 95 % quantile): a
    # 64-label run never leaves the start basin (coverage 0.067 for 4 rounds, see
    # docs/benchmarks.md). The quick size therefore uses 5 eV/A, the same for every campaign.
    "quick": {"label_budget": 48, "walkers.n_walkers": 4, "walkers.max_steps": 1000,
              "walkers.sample_every": 50, "walkers.threshold": 5.0, "walkers.max_time_s": 120,
              "training.max_time_s": 15, "training.max_epochs": 2000, "training.patience": 300},
    "full": {"label_budget": 256, "walkers.max_steps": 20000, "walkers.sample_every": 200,
             "walkers.max_time_s": 600, "training.max_time_s": 90, "training.max_epochs": 1000,
             "training.patience": 200},
}
# uniform: the protocol of issue #23 -- nothing depends on the machine's load: training by a
# fixed epoch budget (no wall cap, no early stop), walkers by steps only; 2 ps walkers; judged by
# benchmarks.ala2_learning_curves on the uniform (phi, psi) grid
SIZES["uniform"] = {"label_budget": 128, "walkers.max_steps": 4000, "walkers.sample_every": 100,
                    "walkers.max_time_s": None, "training.max_time_s": None,
                    "training.max_epochs": 300, "training.patience": 300}
# branch: full settings; the label budget is the parent's labels at the branch round + new ones
SIZES["branch"] = {k: v for k, v in SIZES["full"].items() if k != "label_budget"}
BRANCH = {"parent": ROOT / "runs" / "ala2_campaigns" / "full" / "biased_300K_s0", "round": 15,
          "labels": 40}
BRANCH_CAMPAIGNS = ("biased_300K",) + EXTRAS
DEFAULT_SEEDS = {"tiny": [0], "quick": [0], "full": [0, 1, 2], "branch": [0], "uniform": [0, 1, 2]}
# models evaluated for the error-vs-labels curves (the final model is always evaluated)
CURVE_POINTS = {"tiny": 2, "quick": 4, "full": 8, "branch": 3, "uniform": 4}


# ---------------------------------------------------------------------------------- configs
def campaign_config(name: str, size: str, seed: int) -> dict:
    """Merged config: common + campaign + size preset + seed; paths made absolute. The branch
    size also points the round-0 data at the parent campaign (``BRANCH``, ubmd.al.branch)."""
    cfg = yaml.safe_load((CONFIGS / "ala2_common.yaml").read_text())
    merge(cfg, yaml.safe_load((CONFIGS / f"ala2_{name}.yaml").read_text()) or {})
    if size == "branch":
        parent = Path(BRANCH["parent"])
        try:
            merge(cfg, branch_settings(parent, int(BRANCH["round"]), int(BRANCH["labels"]),
                                       unpack_dir=UNPACKED / parent.parent.name / parent.name))
        except ValueError as exc:
            raise SystemExit(f"--branch-from {parent}: {exc}") from None
    return sized_config(cfg, SIZES[size], CONFIGS, seed)


def run_campaign(name: str, size: str, seed: int, runs: Path) -> dict:
    return run_sized_campaign(campaign_config(name, size, seed), name, size, seed, runs)


# ---------------------------------------------------------------------------------- analysis
def traced_points(out: Path, rounds: list[dict]) -> dict:
    """{round: [(phi, psi) of each walker]} from the walkers' trace.npz (every log_every steps)."""
    return {r: list(ws.values()) for r, ws in walker_traces(out, "cvs", rounds).items()}


def campaign_points(name: str, size: str, seed: int, runs: Path) -> dict:
    """``traced_points`` of a campaign from its directory, else from its archive."""
    arch = archived_traces(run_dir(runs, size, name, seed),
                           archive_dir("ala2_campaigns", size, name, seed, runs),
                           lambda out, rounds: walker_traces(out, "cvs", rounds))
    return {r: list(ws.values()) for r, ws in arch.items()}


def analyze_cli_coverage(out: Path, rounds: list[dict], outdir: Path, name: str) -> dict | None:
    """``ubmd analyze coverage`` over the walkers' trace dumps, grouped by round."""
    groups = []
    for s in rounds:
        files = sorted((out / f"round_{s['round']:03d}" / "walkers").glob("w*/trace.lammpstrj"))
        files = [f for f in files if f.stat().st_size > 0]
        if files:
            groups.append(f"r{s['round']}=" + ",".join(str(f.relative_to(ROOT)) if f.is_relative_to(ROOT)
                                                        else str(f) for f in files))
    if not groups:
        return None
    cmd = [ubmd_exe(), "analyze", "coverage", *groups, "--cv-names", str(DIHEDRALS),
           "--cv", "phi", "--cv", "psi", "-o", str(outdir), "--name", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        return None
    res = json.loads((outdir / f"{name}.json").read_text())
    short = [ubmd_exe().rsplit("/", 1)[-1], "analyze", "coverage",
             f"r0=<{out.name}/round_000/walkers/w*/trace.lammpstrj> r1=... (one group per round)",
             "--cv-names", str(DIHEDRALS.relative_to(ROOT)), "--cv", "phi", "--cv", "psi",
             "-o", str(outdir), "--name", name]
    return {"coverage": res["coverage"], "n_points": res["n_points"],
            "fraction_per_level": res["fraction_per_level"], "png": str(outdir / f"{name}.png"),
            "command": " ".join(short)}


def test_sets() -> dict:
    from ubmd.data import read_structures

    return {"300K": read_structures(DATA / "ala2_gfn2_300K.extxyz")[-200:],
            "600K": read_structures(DATA / "ala2_gfn2_600K.extxyz")[-200:],
            "1200K": read_structures(DATA / "ala2_gfn2_1200K.extxyz")}


def evaluate(train_dir: Path, sets: dict, cache: Path, check_model_file: bool = False) -> dict:
    """Energy RMSE (meV/atom), force RMSE and max |force error| (eV/Å) of one round's model
    (``train_dir/members.pt``, batched float64) on every test set (cached). With
    ``check_model_file`` the first 5 frames of each set are also run through the exported
    ``model.pt`` (per frame) and both RMSEs kept (``ubmd.evaluation.score_members``)."""
    import torch

    torch.set_num_threads(1)

    def compute():
        res = {}
        for key, frames in sets.items():
            r = score_members(train_dir, frames, check_model_file=5 if check_model_file else 0)
            res[key] = {**r["all"], **({"check_model_file": r["check_model_file"]}
                                       if check_model_file else {})}
        return res

    return cached(cache, compute)


def analyze_campaign(name: str, size: str, seed: int, runs: Path, sets: dict, figdir: Path) -> dict:
    from ubmd.analysis.coverage import coverage_by_round

    out = run_dir(runs, size, name, seed)
    rounds = load_rounds(out)
    if not rounds:
        return {"error": f"no finished round in {out}"}
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    traces = walker_traces(out, "cvs", rounds)
    pts = {r: list(ws.values()) for r, ws in traces.items()}
    write_archive(out, archive_dir("ala2_campaigns", size, name, seed, runs), traces)
    cov = coverage_by_round(pts) if pts else None
    n_frames = int(sum(len(p) for ws in pts.values() for p in ws))
    per_round = []
    for s in rounds:
        t = s.get("timings_s") or {}
        key = str(s["round"])
        walkers = s.get("walkers") or []
        per_round.append({
            "round": s["round"], "labels_used": s["labels_used"], "n_dataset": s["n_dataset"],
            "timings_s": {k: t.get(k) for k in ("reference", "reference_wall", "training",
                                                 "sampling", "selection")},
            "valid_energy_rmse_meV_atom": 1000 * (s.get("errors_valid") or {}).get("energy_rmse", np.nan),
            "valid_forces_rmse": (s.get("errors_valid") or {}).get("forces_rmse"),
            "n_pool": s.get("n_pool"),
            "walker_steps": [w.get("n_steps") for w in walkers],
            "walker_stops": [w.get("stop_reason") for w in walkers],
            "traced_frames": int(sum(len(p) for p in pts.get(s["round"], []))),
            "coverage_this_round": cov["per_round"].get(key) if cov else None,
            "coverage_cumulative": cov["cumulative"].get(key) if cov else None,
        })
    last = rounds[-1]
    final_dir = out / f"round_{last['round']:03d}" / "train"
    final = evaluate(final_dir, sets, final_dir / "test_errors.json", check_model_file=True)
    curve = []
    for r in curve_rounds(len(rounds), CURVE_POINTS[size]):
        m = out / f"round_{r:03d}" / "train"
        if (m / "members.pt").exists():
            curve.append({"round": r, "labels": rounds[r]["labels_used"],
                          **evaluate(m, sets, m / "test_errors.json", check_model_file=r == last["round"])})
    cli = analyze_cli_coverage(out, rounds, runs / size / "analysis", f"{name}_s{seed}")
    if cli and seed == 0 and figdir is not None:
        figdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(cli["png"], figdir / f"ala2_{size}_coverage_{name}.png")
    stage = {k: float(np.nansum([(p["timings_s"].get(k) or 0.0) for p in per_round]))
             for k in ("reference", "training", "sampling", "selection")}
    md_steps = int(sum(sum(x for x in p["walker_steps"] if x) for p in per_round))
    return {**campaign_record(out, rounds, cfg, stage, md_steps),
            "coverage": {"final": cov["cumulative"][str(max(pts))] if cov else None,
                         "final_per_level": cov["cumulative_per_level"][str(max(pts))] if cov else None,
                         "n_md_frames": n_frames, "md_steps": md_steps,
                         "md_time_ps": md_steps * cfg["walkers"]["timestep"] / 1000.0,
                         "cli": cli},
            "test_errors_final": final,
            "test_errors_curve": curve,
            "rounds": per_round}


def walker_temperatures(out: Path, rounds: list[dict]) -> np.ndarray:
    """Every thermo-row temperature (K) of every walker of ``rounds`` (LAMMPS logs)."""
    from ubmd.md.lammps_engine import parse_thermo

    temps = []
    for s in rounds:
        for log in sorted((out / f"round_{s['round']:03d}" / "walkers").glob("w*/log.lammps")):
            cols, _ = parse_thermo(log)
            if len(cols.get("Temp", [])) > 1:
                temps.append(cols["Temp"][1:])  # row 0: the velocities drawn at the target
    return np.concatenate(temps) if temps else np.zeros(0)


def campaign_record(out: Path, rounds: list[dict], cfg: dict, stage: dict, md_steps: int) -> dict:
    """Settings, costs and uncertainty quality of one campaign (everything but coverage and
    test errors)."""
    quality = [s.get("quality_atomic") or {} for s in rounds]
    temps = walker_temperatures(out, rounds)

    def mean_of(key):
        x = [q[key] for q in quality if q.get(key) is not None]
        return float(np.mean(x)) if x else None

    return {
        "directory": str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out),
        "finished": campaign_finished(out),
        "n_rounds": len(rounds), "labels_used": rounds[-1]["labels_used"],
        "n_dataset": rounds[-1]["n_dataset"],
        "engine": next((s.get("engine") for s in rounds if s.get("engine")), None),
        "settings": {"temperature_K": cfg["walkers"]["temperature"],
                     "tau_forces": cfg["walkers"]["tau_forces"],
                     "weights": cfg["walkers"].get("weights"),
                     "uncertainty": cfg["uncertainty"]["kind"],
                     "features": cfg["uncertainty"]["features"],
                     "n_models": cfg["training"].get("n_models", 1),
                     "selection": cfg["selection"]["method"], "batch_size": cfg["selection"]["batch_size"],
                     "n_walkers": cfg["walkers"]["n_walkers"], "max_steps": cfg["walkers"]["max_steps"],
                     "threshold": cfg["walkers"]["threshold"],
                     "sample_every": cfg["walkers"]["sample_every"],
                     "log_every": cfg["walkers"]["log_every"], "label_budget": cfg["label_budget"],
                     "hidden": cfg["model"]["hidden"], "train_cap_s": cfg["training"]["max_time_s"],
                     "initial": cfg["initial"]},
        "stage_totals_s": stage,
        "costs": {"training_s_per_round": stage["training"] / len(rounds),
                  "selection_s_per_round": stage["selection"] / len(rounds),
                  **walker_md_costs(out, rounds, md_steps)},
        # kinetic temperature of the walkers (thermo rows every log_every steps; the bias does work)
        "walker_temperature_K": {"mean": float(np.mean(temps)) if len(temps) else None,
                                 "p95": float(np.percentile(temps, 95)) if len(temps) else None,
                                 "n_rows": int(len(temps))},
        # calibrated atomic uncertainty against the atomic force error on the validation set,
        # mean over rounds (ubmd.uncertainty.metrics)
        "uncertainty_quality_atomic": {"spearman": mean_of("spearman"),
                                       "miscalibration_area": mean_of("miscalibration_area"),
                                       "coverage": mean_of("coverage"), "nll": mean_of("nll")},
    }


# ---------------------------------------------------------------------------------- branch
def parent_continuation(parent: Path, r: int, new_labels: int, sets: dict) -> dict:
    """What the parent campaign itself did over the branch's label range: coverage of the
    frames its walkers traced in the rounds whose models had [L, L + new_labels) labels (L = its
    labels at round ``r``), and the test errors of its model at L + new_labels labels."""
    from ubmd.analysis.coverage import coverage_by_round

    rounds = load_rounds(parent)
    if len(rounds) <= r:
        return {"error": f"{parent} has no round {r}"}
    first = rounds[r]["labels_used"]
    span = [s for s in rounds[r:] if s["labels_used"] < first + new_labels]
    pts = traced_points(parent, span)
    cov = coverage_by_round(pts) if pts else None
    md_steps = int(sum(w.get("n_steps") or 0 for s in span for w in (s.get("walkers") or [])))
    end = next((s for s in rounds if s["labels_used"] >= first + new_labels), None)
    errors = None
    if end is not None:
        m = parent / f"round_{end['round']:03d}" / "train"
        if (m / "members.pt").exists():
            errors = {"round": end["round"], "labels": end["labels_used"],
                      **evaluate(m, sets, m / "test_errors.json")}
    stage = {k: float(sum((s.get("timings_s") or {}).get(k) or 0.0 for s in span))
             for k in ("training", "sampling", "selection")}
    return {"rounds": [s["round"] for s in span], "labels_first": first,
            "coverage": cov["cumulative"][str(max(pts))] if cov else None,
            "coverage_per_level": cov["cumulative_per_level"][str(max(pts))] if cov else None,
            "n_md_frames": int(sum(len(p) for ws in pts.values() for p in ws)),
            "md_steps": md_steps, "test_errors_end": errors,
            **campaign_record(parent, span, yaml.safe_load((parent / "config.yaml").read_text()),
                              {**stage, "reference": 0.0}, md_steps)}


# ---------------------------------------------------------------------------------- figures
LABELS = {"unbiased_300K": "unbiased 300 K", "biased_300K": "biased 300 K (sketch)",
          "unbiased_1200K": "unbiased 1200 K", "biased_300K_lastlayer": "biased 300 K (last layer)",
          "biased_300K_ensemble": "biased 300 K (ensemble)",
          "biased_300K_reflect": "biased 300 K, reflections",
          "unbiased_600K_reflect": "unbiased 600 K, reflections",
          "biased_600K_reflect": "biased 600 K, reflections"}


def _fig(n_cols, size=(4.2, 3.6)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * n_cols, size[1]), constrained_layout=True)
    return fig, [fig.add_subplot(1, n_cols, k + 1) for k in range(n_cols)]


SEED_STYLES = ("-o", "--s", ":^", "-.v", "--D")


def _seed_style(seed: str) -> str:
    """Seed 0 solid with circles; later seeds (a separate series: thermostat fix) dashed,
    dotted, ..."""
    return SEED_STYLES[int(seed) % len(SEED_STYLES)]


def _seed_label(name: str, seed: str) -> str:
    return LABELS.get(name, name) + ("" if seed == "0" else f" (seed {seed})")


def figures(results: dict, size: str, runs: Path, figdir: Path) -> list[str]:
    from matplotlib.ticker import NullFormatter

    figdir.mkdir(parents=True, exist_ok=True)
    names = [n for n in results["campaigns"] if "0" in results["campaigns"][n]]
    paths = []
    # 1. Ramachandran scatter of all traced frames, one figure per seed, over the reference MD data
    from ubmd.data import read_structures

    ref = {t: np.array([[a.info["phi"], a.info["psi"]] for a in
                        read_structures(DATA / f"ala2_gfn2_{t}K.extxyz")]) for t in (300, 1200)}
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    seeds = sorted({s for n in names for s in results["campaigns"][n]}, key=int)
    for seed in seeds:
        with_seed = [n for n in names if seed in results["campaigns"][n]]
        seed_points = {n: campaign_points(n, size, int(seed), runs) for n in with_seed}
        with_seed, part = with_traces(with_seed, seed_points, f"seed-{seed} traced points",
                                      "Ramachandran figure")
        if not with_seed:
            continue
        fig, axes = _fig(len(with_seed), (4.9, 4.0))
        for ax, name in zip(axes, with_seed):
            res = results["campaigns"][name][seed]
            pts = seed_points[name]
            n_r = max(1, len(pts))
            for ref_t, col in ((1200, "0.85"), (300, "0.6")):
                ax.plot(ref[ref_t][:, 0], ref[ref_t][:, 1], ".", ms=1, color=col, zorder=0,
                        label=f"GFN2-xTB MD {ref_t} K")
            for r, ws in sorted(pts.items()):
                p = np.concatenate(ws)
                ax.plot(p[:, 0], p[:, 1], ".", ms=1.5, color=cmap(r / max(1, n_r - 1)), alpha=0.6)
            ax.legend(loc="lower right", fontsize=6, markerscale=6, framealpha=0.8)
            sm = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, max(1, n_r - 1)), cmap)
            fig.colorbar(sm, ax=ax, shrink=0.8, label="AL round of the walker")
            c = res["coverage"]["final"]
            done = "" if res.get("finished", True) else f", {res['labels_used']} labels so far"
            ax.set(xlim=(-180, 180), ylim=(-180, 180), xlabel="phi (deg)", ylabel="psi (deg)",
                   title=f"{LABELS.get(name, name)} (seed {seed})\ncoverage {c:.2f}{done}"
                   if c is not None else name)
            ax.set_aspect("equal")
            ax.set_xticks([-180, -90, 0, 90, 180])
            ax.set_yticks([-180, -90, 0, 90, 180])
        p = figdir / f"ala2_{size}_ramachandran{'' if seed == '0' else f'_s{seed}'}{part}.png"
        fig.savefig(p, dpi=110)
        paths.append(str(p))
    # 2. coverage vs labels (accumulated)
    fig, (ax,) = _fig(1, (5.0, 3.8))
    for k, name in enumerate(names):
        for seed, res in results["campaigns"][name].items():
            rr = [q for q in res["rounds"] if q["coverage_cumulative"] is not None]
            ax.plot([q["labels_used"] for q in rr], [q["coverage_cumulative"] for q in rr],
                    _seed_style(seed), ms=3, color=f"C{k}", label=_seed_label(name, seed), alpha=0.9)
    ax.set(xlabel="labels (training set of the model driving the walkers)",
           ylabel="accumulated coverage", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    p = figdir / f"ala2_{size}_coverage_vs_labels.png"
    fig.savefig(p, dpi=110)
    paths.append(str(p))
    # 2b. coverage vs MD steps and vs sampling wall time (accumulated): what a label costs in MD
    fig, axes2 = _fig(2, (4.6, 3.8))
    for k, name in enumerate(names):
        for seed, res in results["campaigns"][name].items():
            steps, wall, xs, ws, ys = 0, 0.0, [], [], []
            for q in res["rounds"]:
                steps += sum(x for x in q["walker_steps"] if x)
                wall += q["timings_s"].get("sampling") or 0.0
                if q["coverage_cumulative"] is not None:
                    xs.append(max(steps, 1))
                    ws.append(max(wall, 1.0))
                    ys.append(q["coverage_cumulative"])
            axes2[0].plot(xs, ys, _seed_style(seed), ms=3, color=f"C{k}", label=_seed_label(name, seed))
            axes2[1].plot(ws, ys, _seed_style(seed), ms=3, color=f"C{k}")
    axes2[0].set(xscale="log", xlabel="MD steps, all walkers, accumulated", ylabel="accumulated coverage",
                 ylim=(0, 1.02))
    axes2[1].set(xscale="log", xlabel="sampling wall time, accumulated (s)", ylim=(0, 1.02))
    for ax in axes2:  # decade labels only (minor labels overlap on short ranges)
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes2[0].legend(fontsize=8)
    p = figdir / f"ala2_{size}_coverage_vs_md.png"
    fig.savefig(p, dpi=110)
    paths.append(str(p))
    # 3. test errors vs labels
    sets = ("300K", "600K", "1200K")
    fig = _fig(3, (4.0, 3.4))[0]
    fig.clear()
    axes = fig.subplots(2, 3)
    fig.set_size_inches(12, 6.4)
    for k, name in enumerate(names):
        for seed, res in results["campaigns"][name].items():
            cur = res["test_errors_curve"]
            x = [c["labels"] for c in cur]
            for j, t in enumerate(sets):
                lab = _seed_label(name, seed) if j == 0 else None
                axes[0, j].plot(x, [c[t]["energy_rmse_meV_atom"] for c in cur], _seed_style(seed), ms=3,
                                color=f"C{k}", label=lab)
                axes[1, j].plot(x, [c[t]["forces_rmse"] for c in cur], _seed_style(seed), ms=3,
                                color=f"C{k}")
    for j, t in enumerate(sets):
        axes[0, j].set(title=f"{t} test set", ylabel="energy RMSE (meV/atom)", yscale="log")
        axes[1, j].set(xlabel="labels", ylabel="force RMSE (eV/Å)", yscale="log")
    axes[0, 0].legend(fontsize=7)
    p = figdir / f"ala2_{size}_rmse_vs_labels.png"
    fig.savefig(p, dpi=110)
    paths.append(str(p))
    return paths


# ---------------------------------------------------------------------------------- main
def summarize(campaigns: dict) -> dict:
    """Mean and std over seeds of the headline numbers."""
    out = {}
    for name, by_seed in campaigns.items():
        vals = list(by_seed.values())

        def stat(get):
            return seed_stat([get(v) for v in vals])

        s = {"coverage": stat(lambda v: v["coverage"]["final"]),
             "labels": stat(lambda v: v["labels_used"])}
        for t in ("300K", "600K", "1200K"):
            for q in ("energy_rmse_meV_atom", "forces_rmse", "forces_max"):
                s[f"{t}_{q}"] = stat(lambda v, t=t, q=q: v["test_errors_final"][t][q])
        for k in ("reference", "training", "sampling", "selection"):
            s[f"time_{k}_s"] = stat(lambda v, k=k: v["stage_totals_s"][k])
        out[name] = s
    return out


def main(argv=None) -> int:
    p = driver_parser(__doc__, SIZES, "64 labels, < 15 min for the three campaigns", MAIN + EXTRAS,
                      f"default: {' '.join(MAIN)} (+ extras with --extras)",
                      ROOT / "runs" / "ala2_campaigns",
                      "default benchmarks/results/ala2_campaigns_<size>.json")
    p.add_argument("--extras", action="store_true", help=f"also run {' '.join(EXTRAS)}")
    b = p.add_argument_group("branch size (--size branch; default campaigns: "
                             f"{' '.join(BRANCH_CAMPAIGNS)})")
    b.add_argument("--branch-from", default=str(BRANCH["parent"]), help="parent campaign directory")
    b.add_argument("--branch-round", type=int, default=BRANCH["round"],
                   help="continue from the parent's data set at this round")
    b.add_argument("--branch-labels", type=int, default=BRANCH["labels"], help="new labels per branch")
    b.add_argument("--no-cost", action="store_true", help="skip the LAMMPS cost measurement")
    a = p.parse_args(argv)
    if a.size == "branch" and a.label_budget is not None:
        p.error("--label-budget does not apply to --size branch (its budget is the parent's "
                "labels + --branch-labels)")
    SIZES[a.size] = with_label_budget(SIZES, a.size, a.label_budget)  # this call's preset
    BRANCH.update(parent=Path(a.branch_from).resolve(), round=a.branch_round, labels=a.branch_labels)
    seeds = a.seeds if a.seeds is not None else DEFAULT_SEEDS[a.size]
    default = BRANCH_CAMPAIGNS if a.size == "branch" else MAIN + (EXTRAS if a.extras else ())
    names = list(a.campaigns or default)
    runs = Path(a.runs)
    t_start = time.perf_counter()
    if a.dry_run:
        return dry_run(names, seeds, a.size, SIZES[a.size], runs,
                       lambda name, seed: campaign_config(name, a.size, seed))
    if a.size == "branch":
        for name in names:
            for seed in seeds:
                try:
                    check_branch_dir(run_dir(runs, a.size, name, seed),
                                     campaign_config(name, a.size, seed))
                except ValueError as exc:
                    raise SystemExit(f"{exc} (--runs)") from None
    commands, errors, run_s = ({}, {}, 0.0) if a.analyze_only else run_campaigns(
        names, seeds, lambda name, seed: run_campaign(name, a.size, seed, runs))
    sets = test_sets()
    results_path, figdir = output_paths("ala2_campaigns", a.size, runs, a.results, RESULTS, FIGURES,
                                         a.label_budget)
    campaigns = analyze_started(names, seeds, runs, a.size, lambda name, seed: analyze_campaign(
        name, a.size, seed, runs, sets, None if a.no_figures else figdir),
        SIZES[a.size].get("label_budget"))
    old, merged = merged_campaigns(results_path, campaigns)
    results = results_record(
        "ala2_campaigns", a.size, SIZES[a.size], merged, old, commands, errors, run_s,
        test_sets={"300K": "last 200 frames of ala2_gfn2_300K.extxyz",
                   "600K": "last 200 frames of ala2_gfn2_600K.extxyz",
                   "1200K": "all 600 frames of ala2_gfn2_1200K.extxyz"},
        coverage_metric="multiscale grid over (phi, psi) in [-180,180)^2, 2^k x 2^k cells for "
                        "k = 1..5, mean visited fraction; all traced MD frames (every "
                        "walkers.log_every steps) of all walkers, accumulated over rounds",
        summary=summarize(merged))
    if a.size == "branch":
        results["branch"] = {"parent": str(BRANCH["parent"]), "round": BRANCH["round"],
                             "new_labels": BRANCH["labels"],
                             "parent_continuation": parent_continuation(
                                 Path(BRANCH["parent"]), BRANCH["round"], BRANCH["labels"], sets)}
        if not a.no_cost:
            results["branch"]["lammps_cost"] = lammps_cost(
                {n: run_dir(runs, a.size, n, seeds[0]) for n in merged}, runs / "branch" / "cost")
    if not a.no_figures and merged:
        results["figures"] = figures(results, a.size, runs, figdir)
    write_results(results_path, results)
    print_table(results)
    print(f"wrote {results_path} ({time.perf_counter() - t_start:.0f} s)")
    return 1 if errors else 0


def print_table(results: dict) -> None:
    print(f"\nala2 campaigns, size {results['size']}, seeds {results['seeds']}")
    head = (f"{'campaign':24s} {'labels':>6s} {'cover':>6s} | " + " | ".join(
        f"{t:>5s} E meV/at  F eV/Å  Fmax" for t in ("300K", "600K", "1200K")))
    print(head)
    for name, s in results["summary"].items():
        row = f"{name:24s} {s['labels']['mean']:6.0f} {s['coverage']['mean']:6.3f} | "
        row += " | ".join(f"{s[f'{t}_energy_rmse_meV_atom']['mean']:14.2f} {s[f'{t}_forces_rmse']['mean']:7.3f} "
                          f"{s[f'{t}_forces_max']['mean']:5.2f}" for t in ("300K", "600K", "1200K"))
        print(row)
    br = results.get("branch")
    if br:
        pc = br["parent_continuation"]
        print(f"\nbranch from {br['parent']} round {br['round']} (+{br['new_labels']} labels)")
        print(f"{'campaign':24s} {'cover':>6s} {'frames':>7s} {'steps':>7s} {'train s/rd':>10s} "
              f"{'spearman':>8s} {'MA':>6s} {'T mean':>6s} | LAMMPS ms/step none / biased")
        cost = (br.get("lammps_cost") or {}).get("ms_per_step", {})

        def row(name, r, c):
            q = r["uncertainty_quality_atomic"]
            ms = " / ".join(f"{c.get(m):.2f}" if c.get(m) else "-" for m in COST_MODES)
            return (f"{name:24s} {r['cov']:6.3f} {r['frames']:7d} {r['steps']:7d} "
                    f"{r['costs']['training_s_per_round']:10.1f} {q['spearman'] or float('nan'):8.3f} "
                    f"{q['miscalibration_area'] or float('nan'):6.3f} "
                    f"{r['walker_temperature_K']['mean'] or float('nan'):6.0f} | {ms}")
        if "coverage" in pc:
            print(row("parent (continued)", {**pc, "cov": pc["coverage"] or 0.0,
                                             "frames": pc["n_md_frames"], "steps": pc["md_steps"]}, {}))
        for name, by_seed in results["campaigns"].items():
            for seed, r in by_seed.items():
                print(row(f"{name} s{seed}", {**r, "cov": r["coverage"]["final"] or 0.0,
                                              "frames": r["coverage"]["n_md_frames"],
                                              "steps": r["coverage"]["md_steps"]}, cost.get(name, {})))


if __name__ == "__main__":
    sys.exit(main())
