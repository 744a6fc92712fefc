"""The benchmark scripts as a user runs them (``python -m benchmarks.<name>`` from the repository
root, in a subprocess; the test suite imports no benchmark module).

* the alanine-dipeptide campaign driver at its ``tiny`` size (one biased 300 K campaign:
  GFN2-xTB labels through tblite, LAMMPS walkers with ``pair_style ubmd``, training, selection,
  then the measurements: coverage from the traces and from ``ubmd analyze coverage``, test errors
  checked against the model file, the campaign archive); about a minute on 2 cores;
* the campaign configs the drivers merge (``--dry-run``: size presets, seeds, branches);
* the reference-MD baseline at its ``tiny`` size, the LAMMPS-cost script and the metadynamics
  driver's refusal of an unfinished campaign.

The quick and full sizes are not run here (docs/benchmarks.md)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import synthetic_campaign
from lammps_helpers import requires_plugin

ROOT = Path(__file__).resolve().parents[1]
MIL53_CAMPAIGNS = sorted(p.stem[len("mil53_"):] for p in
                         (ROOT / "benchmarks" / "mil53" / "campaigns").glob("mil53_*.yaml"))
MIL53_MAIN = ["unbiased_300K_pm2500", "bias_forces_300K_pm2500", "bias_forces_stress_300K_pm2500"]


def run_benchmark(module: str, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m benchmarks.<module> args`` from the repository root."""
    return subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def dry_run(module: str, tmp_path: Path, *args) -> dict:
    proc = run_benchmark(module, "--dry-run", "--runs", tmp_path / "runs", *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _record(labels: int) -> dict:
    """A campaign record of the alanine results JSON, as an earlier call left it."""
    return {"coverage": {"final": 0.5}, "labels_used": labels, "finished": True, "rounds": [],
            "test_errors_curve": [],
            "test_errors_final": {t: {"energy_rmse_meV_atom": 1.0, "forces_rmse": 0.1,
                                      "forces_max": 0.5} for t in ("300K", "600K", "1200K")},
            "stage_totals_s": {k: 1.0 for k in ("reference", "training", "sampling", "selection")}}


# ------------------------------------------------------------------------------ alanine, tiny
@requires_plugin
def test_ala2_campaign_driver_tiny(tmp_path):
    pytest.importorskip("tblite")
    results = tmp_path / "ala2_tiny.json"
    # results of other campaigns and seeds from earlier calls survive a partial re-analysis
    earlier = {"biased_300K": {"1": _record(16)}, "unbiased_300K": {"0": _record(12)}}
    results.write_text(json.dumps({"campaigns": earlier}))
    runs = tmp_path / "runs"
    proc = run_benchmark("ala2_campaigns", "--size", "tiny", "--campaigns", "biased_300K",
                         "--runs", runs, "--results", results, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    d = json.loads(results.read_text())
    assert d["errors"] == {}
    assert d["campaigns"]["biased_300K"]["1"] == earlier["biased_300K"]["1"]
    assert d["campaigns"]["unbiased_300K"] == earlier["unbiased_300K"]
    assert d["seeds"] == [0, 1] and d["summary"]["biased_300K"]["labels"]["n"] == 2
    c = d["campaigns"]["biased_300K"]["0"]
    assert c["finished"] and c["engine"] == "lammps"
    assert c["labels_used"] == d["size_preset"]["label_budget"] == 16
    assert c["n_dataset"] == 16

    cov = c["coverage"]
    levels = cov["final_per_level"]
    assert len(levels) == 5 and all(0.0 < f <= 1.0 for f in levels)
    assert cov["final"] == pytest.approx(sum(levels) / 5, rel=1e-12)
    # a visited 2^k cell means at least one visited 2^(k+1) cell inside it: fractions fall by at
    # most a factor 4 from one level to the next
    assert all(b >= a / 4 - 1e-12 for a, b in zip(levels, levels[1:]))
    assert cov["n_md_frames"] >= 4  # at least the walkers' start frames
    # the driver's coverage (trace.npz) and the CLI's (trace.lammpstrj) agree exactly
    assert cov["cli"]["coverage"] == pytest.approx(cov["final"], abs=1e-15)
    assert cov["cli"]["n_points"] == cov["n_md_frames"]
    assert "benchmarks/data/ala2/dihedrals.json" in cov["cli"]["command"]

    for t in ("300K", "600K", "1200K"):
        e = c["test_errors_final"][t]
        assert all(math.isfinite(e[k]) and e[k] > 0 for k in
                   ("energy_rmse_meV_atom", "forces_rmse", "forces_max"))
        assert e["forces_max"] >= e["forces_rmse"]
        chk = e["check_model_file"]  # batched float64 members vs the exported float32 model file
        assert chk["forces_rmse_batched"] == pytest.approx(chk["forces_rmse_model_file"], rel=1e-4)
        assert chk["energy_rmse_meV_atom_batched"] == pytest.approx(
            chk["energy_rmse_meV_atom_model_file"], rel=1e-3)
    # the error curve: the first and the last round's models (tiny: 2 points)
    assert [q["round"] for q in c["test_errors_curve"]] == sorted({0, c["n_rounds"] - 1})
    assert all(k in c["stage_totals_s"] for k in ("reference", "training", "sampling", "selection"))
    # tiny writes its figures and the campaign archive under the runs directory, never into the
    # repository (docs/, benchmarks/results/archive/)
    assert d["figures"] and all(str(tmp_path) in p and Path(p).exists() for p in d["figures"])
    archive = runs / "tiny" / "archive" / "ala2_campaigns_tiny" / "biased_300K_s0"
    assert (archive / "rounds.json").exists() and (archive / "traces.npz").exists()
    assert not (ROOT / "benchmarks" / "results" / "archive" / "ala2_campaigns_tiny").exists()


# ------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("size", ["tiny", "quick", "full"])
def test_mil53_campaign_config_applies_size_preset(size, tmp_path):
    from ubmd.al.config import ALConfig
    from ubmd.config import from_dict

    d = dry_run("mil53_campaigns", tmp_path, "--size", size, "--seeds", "2",
                "--campaigns", "bias_forces_stress_300K_pm2500")
    cfg = d["configs"]["bias_forces_stress_300K_pm2500_s2"]
    for key, value in d["size_preset"].items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    # campaign settings kept, start structure resolved to the examples file
    assert cfg["walkers"]["ensemble"] == "npt"
    assert cfg["walkers"]["pressure"] == [2500.0, -2500.0]
    assert cfg["walkers"]["tau_forces"] == 0.25 and cfg["walkers"]["tau_stress"] == 0.25
    start = Path(cfg["initial"]["structures"])
    assert start.is_absolute() and start.exists() and start.name == "mil53_lp_gfn1_2x1x1.extxyz"
    # the improved learning rate of docs/accuracy.md, from the campaign configs
    assert cfg["training"]["lr"] == pytest.approx(0.03)
    assert cfg["training"]["lr_final"] == pytest.approx(3e-4)
    assert cfg["initial"]["seed"] == 2 and cfg["walkers"]["seed"] == 200_000
    assert cfg["selection"]["seed"] == 2 and cfg["data"]["split_seed"] == 2
    # the merged config is a valid AL config (unknown keys would raise), written where a run
    # would read it
    parsed = from_dict(ALConfig, dict(cfg, output="x"))
    assert parsed.label_budget == d["size_preset"]["label_budget"]
    written = tmp_path / "runs" / size / "configs" / "bias_forces_stress_300K_pm2500_s2.yaml"
    assert written.exists()


def test_mil53_default_campaigns_are_generated_configs_and_full_is_affordable(tmp_path):
    assert len(MIL53_CAMPAIGNS) == 20  # benchmarks.mil53.make_campaigns: 5 x 2 x 2
    defaults = {size: dry_run("mil53_campaigns", tmp_path, "--size", size)
                for size in ("tiny", "full")}
    assert set(defaults["tiny"]["campaigns"]) <= set(MIL53_CAMPAIGNS)
    full = defaults["full"]
    assert full["campaigns"] == MIL53_MAIN and full["seeds"] == [0]
    assert set(MIL53_MAIN) <= set(MIL53_CAMPAIGNS)
    preset = full["size_preset"]
    assert preset["label_budget"] <= 160
    assert 60 <= preset["training.max_time_s"] <= 120
    assert preset["walkers.max_time_s"] <= 120


def test_mil53_campaign_config_does_not_modify_other_campaigns(tmp_path):
    a, b = (dry_run("mil53_campaigns", tmp_path, "--size", size, "--campaigns",
                    "unbiased_600K_p0")["configs"]["unbiased_600K_p0_s0"] for size in ("quick", "full"))
    assert a["walkers"]["temperature"] == 600.0 and a["walkers"]["pressure"] == 0.0
    assert a["walkers"]["tau_forces"] == 0.0
    assert a["label_budget"] != b["label_budget"]
    proc = run_benchmark("mil53_campaigns", "--dry-run", "--campaigns", "nonexistent")
    assert proc.returncode != 0 and "nonexistent" in proc.stderr


def test_ala2_branch_config_merges_campaign_and_branch(tmp_path):
    parent = synthetic_campaign(tmp_path / "parent", 4, n_new=5)
    d = dry_run("ala2_campaigns", tmp_path, "--size", "branch", "--branch-from", parent,
                "--branch-round", "2", "--branch-labels", "16", "--seeds", "1",
                "--campaigns", "biased_300K_ensemble")
    cfg = d["configs"]["biased_300K_ensemble_s1"]
    assert cfg["label_budget"] == 5 + 16
    assert cfg["uncertainty"]["kind"] == "ensemble" and cfg["training"]["n_models"] == 3
    assert cfg["initial"]["data"].endswith("round_001/dataset.extxyz")
    assert cfg["initial"]["n_perturbed"] == 0
    # full-size walker and training settings, the seed applied everywhere
    assert "label_budget" not in d["size_preset"]
    assert cfg["walkers"]["max_steps"] == d["size_preset"]["walkers.max_steps"] == 20000
    assert cfg["training"]["max_time_s"] == d["size_preset"]["training.max_time_s"]
    assert cfg["walkers"]["seed"] == 100_000 and cfg["selection"]["seed"] == 1
    proc = run_benchmark("ala2_campaigns", "--dry-run", "--size", "branch", "--branch-from", parent,
                         "--branch-round", "9", "--runs", tmp_path / "runs")
    assert proc.returncode != 0 and "round 9 has finished" in proc.stderr


# ------------------------------------------------------------------------------ other scripts
def test_ala2_reference_md_tiny_against_campaign_curves(tmp_path):
    """Two GFN2-xTB walkers of 60 steps at 1200 K, compared with the accumulated coverage of
    campaigns at equal MD steps (120 in all): the last round within them, rounds without walkers
    skipped, campaigns with no round within them left out."""
    pytest.importorskip("tblite")
    campaigns = tmp_path / "campaigns.json"
    rounds = [{"walker_steps": [10, 20], "coverage_cumulative": 0.1},
              {"walker_steps": None, "coverage_cumulative": None},  # last round: no walkers
              {"walker_steps": [50, 50], "coverage_cumulative": 0.2}]
    late = [{"walker_steps": [100, 100], "coverage_cumulative": 0.3}]
    campaigns.write_text(json.dumps({"campaigns": {"biased_300K": {"0": {"rounds": rounds}},
                                                   "unbiased_300K": {"0": {"rounds": late}}}}))
    results = tmp_path / "ref.json"
    proc = run_benchmark("ala2_reference_md", "--size", "tiny", "--runs", tmp_path / "runs",
                         "--campaigns-json", campaigns, "--results", results,
                         "--figure", tmp_path / "ref.png", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    d = json.loads(results.read_text())
    t = d["temperatures"]["1200"]
    assert t["n_walkers"] == 2 and t["steps_per_walker"] == 60 and t["md_steps"] == 120
    assert [w["traced_frames"] for w in t["walkers"]] == [6, 6]
    assert t["coverage_vs_steps"][-1]["md_steps"] == 120 and 0 < t["coverage"] <= 1
    assert t["campaigns_at_equal_md_steps"] == {
        "120": {"biased_300K": {"0": {"md_steps": 30, "coverage": 0.1}}}}
    assert Path(d["figure"]).exists()


def test_campaign_md_cost_skips_campaigns_without_lammps_walkers(tmp_path):
    parent = synthetic_campaign(tmp_path / "parent")  # rounds with summaries, no walker decks
    out = tmp_path / "cost.json"
    proc = run_benchmark("campaign_md_cost", parent, "--steps", "10", "--repeats", "1",
                         "--out", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res.get("ms_per_step", {}) == {} or "error" in res


def test_mil53_metadynamics_needs_a_finished_campaign(tmp_path):
    proc = run_benchmark("mil53_metadynamics", "--size", "tiny", "--runs", tmp_path)
    assert proc.returncode == 2 and "has not finished" in proc.stderr


@requires_plugin
def test_runaway_guard_benchmark_tiny(tmp_path):
    """benchmarks.runaway_guard end to end at the smallest size (one seed, both guard settings,
    LAMMPS): the results JSON has a row per setting with the walkers' peak temperatures."""
    out = tmp_path / "runaway.json"
    proc = run_benchmark("runaway_guard", "--frames", 20, "--epochs", 5, "--seeds", 1,
                         "--steps", 150, "--taus", 2.0, "--engines", "lammps",
                         "--runs", tmp_path / "runs", "--out", out, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["engine"], r["tau_forces"], r["guard"]) for r in rows] == [
        ("lammps", 2.0, True), ("lammps", 2.0, False)]
    assert all(len(r["walkers"]) == 1 and r["max_ratio"] > 0 for r in rows)


# ------------------------------------------------------------------------------ pool selection
def test_pool_selection_counts_crossing_frames(tmp_path):
    """benchmarks.pool_selection: crossing fractions of pool and selection per round and their
    means, from hand-made rounds (round 1: 1 of 4 pool frames a crossing, both selected frames
    crossings; round 0: no crossing; a round without a pool is skipped)."""
    from ase import Atoms
    from ase.io import write

    def frames(triggers, u):
        out = []
        for t, x in zip(triggers, u):
            a = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]])
            a.info.update(trigger=t, max_atomic_uncertainty=x)
            out.append(a)
        return out
    camp = tmp_path / "camp_s0"
    for r, (pool, sel) in enumerate([
            (frames([False] * 3, [0.1, 0.2, 0.3]), frames([False], [0.3])),
            (frames([True, False, False, False], [1.6, 0.2, 0.4, 0.6]),
             frames([True, True], [1.6, 1.8]))]):
        d = camp / f"round_{r:03d}"
        d.mkdir(parents=True)
        write(d / "pool.extxyz", pool)
        write(d / "selected.extxyz", sel)
    (camp / "round_002").mkdir()
    out = tmp_path / "pool.json"
    proc = run_benchmark("pool_selection", camp, "--late", 1, "--json", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())["campaigns"][0]
    assert [r["round"] for r in res["rounds"]] == [0, 1]
    r1 = res["rounds"][1]
    assert (r1["pool"], r1["selected"]) == (4, 2)
    assert r1["pool_crossing_fraction"] == pytest.approx(0.25)
    assert r1["selected_crossing_fraction"] == pytest.approx(1.0)
    assert r1["pool_median_max_u"] == pytest.approx(0.5)
    assert r1["selected_median_max_u"] == pytest.approx(1.7)
    assert res["all"]["pool_crossing_fraction"] == pytest.approx(0.125)
    assert res["all"]["selected_crossing_fraction"] == pytest.approx(0.5)
    assert res["late"]["n_rounds"] == 1 and res["late"]["selected_crossing_fraction"] == pytest.approx(1.0)


def test_learning_curves_warm_start_takes_the_previous_rounds_model(tmp_path):
    """ala2_learning_curves --warm-start: the cut of N labels starts from the round model whose
    data set is the campaign's first N - B labels (synthetic rounds of 4, 8, 12, 16 labels);
    none for the first round, for a count no round reached, or for an archive."""
    camp = synthetic_campaign(tmp_path / "camp_s0", 4)
    code = ("import sys; from pathlib import Path; "
            "from benchmarks.ala2_learning_curves import previous_round_model as p; "
            "c = Path(sys.argv[1]); "
            "print([None if (r := p(c, n)) is None else Path(r).parent.name for n in (4, 8, 12, 16, 10)])")
    proc = subprocess.run([sys.executable, "-c", code, str(camp)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[None, 'round_000', 'round_001', 'round_002', None]"


def test_label_budget_extends_a_campaign_instead_of_rerunning_it(tmp_path, monkeypatch):
    """--label-budget: the dry run's configs carry it; run_al resumes a campaign saved with a
    smaller budget (ubmd al resume DIR --label-budget N), refuses one saved with a larger one,
    and the results go to their own JSON."""
    import subprocess

    import yaml

    from benchmarks import campaign_common as cc

    d = dry_run("ala2_campaigns", tmp_path, "--size", "uniform", "--seeds", "1",
                "--campaigns", "biased_300K_reflect", "--label-budget", "256")
    assert d["size_preset"]["label_budget"] == 256
    assert d["configs"]["biased_300K_reflect_s1"]["label_budget"] == 256

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or
                        subprocess.CompletedProcess(cmd, 0))
    out = tmp_path / "camp"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump({"label_budget": 128}))
    cfg = {"label_budget": 256}
    cc.run_al(cfg, tmp_path / "cfg.yaml", out, tmp_path / "log.txt", "t")
    assert calls[-1][1:] == ["al", "resume", str(out), "--label-budget", "256"]
    (out / "config.yaml").write_text(yaml.safe_dump({"label_budget": 256}))  # as resumed
    with pytest.raises(RuntimeError, match="label_budget 256.*add --label-budget 256"):
        cc.run_al({"label_budget": 128}, tmp_path / "cfg.yaml", out, tmp_path / "log.txt", "t")
    assert len(calls) == 1
    fresh = tmp_path / "fresh"
    cc.run_al(cfg, tmp_path / "cfg.yaml", fresh, tmp_path / "log.txt", "t")
    assert calls[-1][1:3] == ["al", "run"] and len(calls) == 2

    res, fig = cc.output_paths("ala2_campaigns", "uniform", tmp_path, None, tmp_path / "r",
                               tmp_path / "f", 256)
    assert res.name == "ala2_campaigns_uniform_256labels.json"
    assert fig == tmp_path / "f" / "ala2_campaigns_uniform_256labels"
    assert cc.output_paths("ala2_campaigns", "uniform", tmp_path, None, tmp_path / "r",
                           tmp_path / "f")[0].name == "ala2_campaigns_uniform.json"


def test_label_budget_keeps_results_and_archives_apart(tmp_path, monkeypatch):
    """An extended campaign is analysed only under its own --label-budget, into its own archive."""
    import yaml

    from benchmarks import campaign_common as cc

    monkeypatch.setattr(cc, "ARCHIVE_TAGS", {})
    runs = tmp_path / "runs"
    for name, budget in (("a", 128), ("b", 256)):
        out = cc.run_dir(runs, "uniform", name, 0)
        (out / "round_000").mkdir(parents=True)
        (out / "round_000" / "summary.json").write_text("{}")
        (out / "config.yaml").write_text(yaml.safe_dump({"label_budget": budget}))
    seen = cc.analyze_started(["a", "b"], [0], runs, "uniform", lambda n, s: n, 128)
    assert seen == {"a": {"0": "a"}}
    assert cc.analyze_started(["a", "b"], [0], runs, "uniform", lambda n, s: n, 256) == \
        {"b": {"0": "b"}}
    assert cc.archive_dir("x", "uniform", "b", 0).parent.name == "x_uniform"
    preset = cc.with_label_budget({"uniform": {"label_budget": 128}}, "uniform", 256)
    assert preset == {"label_budget": 256}
    assert cc.archive_dir("x", "uniform", "b", 0).parent.name == "x_uniform_256labels"


def test_label_budget_refused_for_branch(tmp_path):
    proc = run_benchmark("ala2_campaigns", "--dry-run", "--runs", tmp_path, "--size", "branch",
                         "--label-budget", "300")
    assert proc.returncode != 0 and "does not apply to --size branch" in proc.stderr


def test_round_models_lists_trained_rounds(tmp_path):
    """ala2_round_models: finished rounds with a trained model and enough labels; a directory
    that is no campaign is refused."""
    from benchmarks.ala2_round_models import round_models

    with pytest.raises(SystemExit, match="not a campaign directory"):
        round_models(tmp_path)
    camp = synthetic_campaign(tmp_path / "camp_s0", 4)  # data sets of 4, 8, 12, 16 labels
    (camp / "config.yaml").write_text("label_budget: 16\n")
    for k in (1, 2, 3):
        train = camp / f"round_{k:03d}" / "train"
        train.mkdir()
        if k != 2:
            (train / "members.pt").write_bytes(b"")
    assert [(r, n) for r, n, _ in round_models(camp)] == [(1, 8), (3, 16)]
    assert [(r, n) for r, n, _ in round_models(camp, min_labels=10)] == [(3, 16)]
