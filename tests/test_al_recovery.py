"""Recovering an AL campaign: failed labels are retried (a round whose labels all failed stops
with an error and is redone by `ubmd al resume`), walkers a crashed pool left unfinished rerun,
selection uses the split the model was trained with, `ubmd md` with a model without uncertainty."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk, molecule

from test_al import FIXTURES, campaign_dict, start_cell
from ubmd.al import al_config_from_dict, resume_campaign, run_campaign
from ubmd.al import stages
from ubmd.al.campaign import Campaign
from ubmd.al.stages import StageContext

ALWAYS_FAILS = {"import": f"{FIXTURES / 'al_calcs.py'}:FailingEMT", "kwargs": {"every": 1}}


def _campaign(tmp_path, **over):
    d = campaign_dict(tmp_path, **{"label_budget": 8, "max_rounds": 1,
                                   "training": {"max_epochs": 6}, **over})
    return d, al_config_from_dict(d)


def _write_nan_calculator(path: Path) -> dict:
    path.write_text("from ase.calculators.emt import EMT\n\n"
                    "class NaNEMT(EMT):\n"
                    "    def calculate(self, atoms=None, properties=('energy',), system_changes=None):\n"
                    "        super().calculate(atoms, properties, system_changes or ['positions'])\n"
                    "        self.results['forces'][0, 0] = float('nan')\n")
    return {"import": f"{path}:NaNEMT"}


# ------------------------------------------------------------------------------------- labels
def test_failed_labels_are_retried_unless_rejected(tmp_path):
    """A label that raised (or crashed, or timed out) is computed again by the next run of the
    stage; one rejected for non-finite results is not (a file written before failure kinds
    existed is classified by its reason, as it was then)."""
    from ubmd.al.config import ReferenceConfig
    from ubmd.labelling import collect_labels, label_checkpointed

    frames = [start_cell() for _ in range(3)]
    for k, f in enumerate(frames):
        f.positions += 0.01 * k
    lab = tmp_path / "labels"
    ref = ReferenceConfig(calculator=ALWAYS_FAILS, n_workers=1, stress=False)
    label_checkpointed(frames[:2], lab, ref)
    recs = [json.loads((lab / f"0000{i}.failed.json").read_text()) for i in range(2)]
    assert [r["kind"] for r in recs] == ["error", "error"] and recs[0]["attempts"] == 1
    # index 1: a rejected (non-finite) result; index 2: never labelled
    (lab / "00001.failed.json").write_text(json.dumps(
        {"index": 1, "reason": "non-finite forces returned by the calculator",
         "kind": "rejected", "elapsed_s": 0.1}))
    from ubmd.labelling import read_failure

    legacy = tmp_path / "legacy.failed.json"
    legacy.write_text(json.dumps({"index": 0, "reason": "non-finite forces", "elapsed_s": 0.1}))
    assert read_failure(legacy)["kind"] == "rejected"  # classified as when it was written
    legacy.write_text(json.dumps({"index": 0, "reason": "RuntimeError: SCF", "elapsed_s": 0.1}))
    assert read_failure(legacy)["kind"] == "error"
    ref_ok = ReferenceConfig(calculator="emt", n_workers=1, stress=False)
    info = label_checkpointed(frames, lab, ref_ok)
    assert info["n_computed_now"] == 2 and info["n_retried"] == 1
    assert (lab / "00000.extxyz").exists() and not (lab / "00000.failed.json").exists()
    assert not (lab / "00001.extxyz").exists() and (lab / "00002.extxyz").exists()
    got = collect_labels(lab, 3, 20.0)
    assert len(got["kept"]) == 2
    assert [(f["index"], f["kind"]) for f in got["failures"]] == [(1, "rejected")]
    # a label that fails again counts its attempts
    label_checkpointed(frames[:1], tmp_path / "again", ref)
    label_checkpointed(frames[:1], tmp_path / "again", ref)
    assert json.loads((tmp_path / "again" / "00000.failed.json").read_text())["attempts"] == 2


@pytest.mark.campaign
def test_round_whose_labels_all_failed_is_redone_on_resume(tmp_path):
    """Round 0 with a calculator that always raises: the run stops at the label stage with an
    error naming label_failures.json and how to retry; the stage stays unmarked; once the
    calculator is fixed in the run's config.yaml, `resume` labels everything and finishes."""
    d, cfg = _campaign(tmp_path, reference={"calculator": ALWAYS_FAILS, "n_workers": 1})
    out = Path(d["output"])
    with pytest.raises(RuntimeError, match="every label failed") as err:
        run_campaign(cfg, log=lambda s: None)
    msg = str(err.value)
    assert "label_failures.json" in msg and "ubmd al resume" in msg and "SCF not converged" in msg
    state = json.loads((out / "round_000" / "state.json").read_text())["stages"]
    assert "label" not in state and "train" not in state
    fails = json.loads((out / "round_000" / "label_failures.json").read_text())["failures"]
    assert len(fails) == 8 and all(f["kind"] == "error" for f in fails)
    # resuming with the broken calculator fails the same, clear way (not "split leaves ...")
    with pytest.raises(RuntimeError, match="label_failures.json"):
        resume_campaign(out, log=lambda s: None)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    saved["reference"]["calculator"] = "emt"
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    logged = []
    result = resume_campaign(out, log=logged.append)
    assert result["finished"] and result["rounds"][0]["n_dataset"] == 8
    assert result["rounds"][0]["n_failed"] == 0
    assert any("retried 8 failed label(s)" in line for line in logged)


@pytest.mark.campaign
def test_data_set_too_small_to_split_is_an_error(tmp_path):
    """Every label rejected (non-finite forces): not retried, and with no data the stage stops
    with an error that points to label_failures.json instead of a bare split error later."""
    calc = _write_nan_calculator(tmp_path / "nan_calc.py")
    d, cfg = _campaign(tmp_path, reference={"calculator": calc, "n_workers": 1})
    with pytest.raises(RuntimeError, match=r"too few to train on.*label_failures\.json"):
        run_campaign(cfg, log=lambda s: None)
    state = json.loads((Path(d["output"]) / "round_000" / "state.json").read_text())["stages"]
    assert "label" not in state


@pytest.mark.parametrize("atoms, ensemble, match", [
    (bulk("Cu", "fcc", a=3.61), "nvt", r"structure 0 \(Cu\) has 1 atom.*repeat"),
    (molecule("H2O"), "npt", r"structure 0 \(H2O\) has pbc \[False, False, False\].*nvt"),
])
def test_walker_starts_checked_before_labelling(tmp_path, atoms, ensemble, match):
    """A 1-atom start (NaN velocities once the net momentum is removed) or a non-periodic start
    under NPT is refused before round 0 spends a label."""
    d, _ = _campaign(tmp_path)
    atoms.write(d["initial"]["structures"])
    d["walkers"] = {**d["walkers"], "ensemble": ensemble}
    with pytest.raises(ValueError, match=match):
        run_campaign(al_config_from_dict(d), log=lambda s: None)
    assert not (Path(d["output"]) / "round_000" / "labels").exists()


# ------------------------------------------------------------------ a trained round 0, shared
@pytest.fixture(scope="module")
def round0(tmp_path_factory):
    """A campaign directory whose round 0 is proposed, labelled (EMT) and trained."""
    tmp = tmp_path_factory.mktemp("round0")
    d, cfg = _campaign(tmp, label_budget=16, max_rounds=2)
    c = Campaign(cfg, log=lambda s: None)
    c.layout.root.mkdir(parents=True)
    ctx = _ctx(c)
    for stage in ("propose", "label", "train"):
        getattr(stages, stage)(ctx, c.layout.round(0))
    return d


def _copy_campaign(d: dict, tmp_path: Path, **over) -> Campaign:
    shutil.copytree(d["output"], tmp_path / "run")
    d = {**d, "output": str(tmp_path / "run")}
    for key, value in over.items():
        d[key] = {**d[key], **value}
    return Campaign(al_config_from_dict(d), log=lambda s: None)


def _ctx(c: Campaign) -> StageContext:
    return StageContext(c.cfg, c.layout, c.log)


@pytest.mark.campaign
def test_later_round_whose_labels_all_failed_stops(round0, tmp_path):
    """Round 1 with a data set from round 0 big enough to train on: every label failing still
    stops the stage (unmarked) rather than training round 1 on round 0's data again."""
    c = _copy_campaign(round0, tmp_path, reference={"calculator": ALWAYS_FAILS})
    sel = c.layout.round(0).dataset_frames()[:2]
    for f in sel:
        f.positions += 0.05
    from ubmd.io import write_frames_atomic

    write_frames_atomic(sel, c.layout.round(0).selected)
    ctx, rl = _ctx(c), c.layout.round(1)
    stages.propose(ctx, rl)
    with pytest.raises(RuntimeError, match="every label failed"):
        stages.label(ctx, rl)
    assert not c.layout.round(1).done("label")
    c.cfg.reference.calculator = "emt"
    stages.label(ctx, rl)
    info = c.layout.round(1).info("label")
    assert info["n_labelled"] == 2 and info["n_dataset"] == 10 and info["n_failed"] == 0


# ---------------------------------------------------------------------- crashed walkers
def crash_walker_1(task):
    """Walker 1 kills its own process (as a segfault would); the others wait until it has, so
    they are still in the pool when it breaks, then run normally (and at once when rerun)."""
    from ubmd.md import run_walker

    marker = Path(task.workdir).parent / "w01.crashed"
    if task.index == 1:
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    return run_walker(task)


@pytest.mark.campaign
def test_a_walker_that_kills_its_process_fails_alone(round0, tmp_path, monkeypatch):
    """One walker's process dies while the others run in other worker processes: only it is
    recorded as crashed, the others finish (a dead worker does not break the pool)."""
    c = _copy_campaign(round0, tmp_path, executor={"n_workers": 2, "inline": False},
                       walkers={"n_walkers": 3, "max_steps": 12, "sample_every": 6})
    monkeypatch.setattr(stages, "run_walker", crash_walker_1)
    ctx, rl = _ctx(c), c.layout.round(0)
    try:
        stages.sample(ctx, rl)
    finally:
        ctx.close()
    walkers = {w["index"]: w for w in c.layout.round(0).info("sample")["walkers"]}
    assert walkers[0]["stop_reason"] == walkers[2]["stop_reason"] == "max_steps"
    assert walkers[1]["stop_reason"] == "error" and walkers[1]["crashed"]
    assert "w01 crashed" in walkers[1]["error"]
    assert not walkers[0].get("crashed") and not walkers[2].get("crashed")


def crash_walker_1_at_once(task):
    """Walker 1 kills its own process (as a segfault would) when that is a worker process (run
    inline, it raises instead of killing the test session); the others run normally. Counts its
    crashes in a file."""
    import multiprocessing

    from ubmd.md import run_walker

    if task.index == 1:
        count = Path(task.workdir).parent / "w01.crashes"
        count.write_text(str(int(count.read_text()) + 1 if count.exists() else 1))
        if multiprocessing.parent_process() is None:
            raise RuntimeError("walker w01 ran in the driver's process")
        os.kill(os.getpid(), signal.SIGKILL)
    return run_walker(task)


@pytest.mark.campaign
def test_a_crashing_walker_does_not_end_a_one_worker_campaign(round0, tmp_path, monkeypatch):
    """executor.n_workers 1, and then one walker left to run (as on resume): the walkers still
    run in a worker process (inline: false, the default), so a walker that kills its process is
    recorded as crashed and the stage finishes; inline, the same crash ended the driver."""
    from ubmd.md.task import SUMMARY

    c = _copy_campaign(round0, tmp_path, executor={"n_workers": 1, "inline": False},
                       walkers={"n_walkers": 3, "max_steps": 12, "sample_every": 6})
    monkeypatch.setattr(stages, "run_walker", crash_walker_1_at_once)
    ctx, rl = _ctx(c), c.layout.round(0)
    st = rl
    try:
        for attempt in range(2):  # the second reruns only the failed w01, alone
            before = {k: (st.dir / "walkers" / f"w0{k}" / SUMMARY).stat().st_mtime_ns
                      for k in (0, 2)} if attempt else None
            stages.sample(ctx, rl)
            walkers = {w["index"]: w for w in c.layout.round(0).info("sample")["walkers"]}
            assert walkers[0]["stop_reason"] == walkers[2]["stop_reason"] == "max_steps"
            assert walkers[1]["stop_reason"] == "error" and walkers[1]["crashed"]
            assert "w01 crashed" in walkers[1]["error"]
            if before:
                assert before == {k: (st.dir / "walkers" / f"w0{k}" / SUMMARY).stat().st_mtime_ns
                                  for k in (0, 2)}
            # each attempt runs w01 once: its crash is recorded at once, nothing is rerun
            assert (st.dir / "walkers" / "w01.crashes").read_text() == str(1 + attempt)
    finally:
        ctx.close()


# ---------------------------------------------------------------------------- training split
@pytest.mark.campaign
def test_selection_uses_the_split_the_model_was_trained_with(round0, tmp_path, monkeypatch):
    """data.valid_fraction and split_seed edited before a resume: selection still sees the
    training split of the round's model (split.json; recomputed from train/config.yaml for a
    round trained before split.json existed)."""
    import ubmd.selection.pool as pool_mod
    from ubmd.data import split_indices
    from ubmd.io import write_frames_atomic

    c = _copy_campaign(round0, tmp_path, data={"valid_fraction": 0.5, "split_seed": 7})
    ctx, st = _ctx(c), c.layout.round(0)
    dataset = st.dataset_frames()
    trained = split_indices(len(dataset), 0.25, 0.0, 0)  # the settings round 0 trained with
    assert len(trained.train) == st.info("train")["n_train"]
    write_frames_atomic(dataset[:4], st.pool)
    seen = []

    def fake_select(model, pool, data, train_frames, method, b, seed=0):
        seen.append(train_frames)
        return np.arange(min(b, len(pool)))

    monkeypatch.setattr(pool_mod, "select_from_pool", fake_select)
    monkeypatch.setattr(pool_mod, "RunFeatures", lambda *a, **k: None)
    want = [dataset[i].positions for i in trained.train]

    def check_seen():
        frames = seen.pop()
        assert len(frames) == len(want)
        assert all(np.allclose(f.positions, p) for f, p in zip(frames, want))

    stages.select(ctx, st)
    check_seen()
    saved = json.loads((st.dir / "split.json").read_text())
    assert saved["train"] == trained.train and saved["valid"] == trained.valid
    (st.dir / "split.json").unlink()  # a round trained before split.json existed
    stages.select(ctx, st)
    check_seen()
    assert json.loads((st.dir / "split.json").read_text()) == saved


# --------------------------------------------------------------- ubmd md without uncertainty
@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    """A tiny model exported without uncertainty (uncertainty.kind: none)."""
    from conftest import emt_frames
    from ubmd.config import TrainRunConfig, from_dict
    from ubmd.training import train_from_config

    out = tmp_path_factory.mktemp("plain_model")
    frames = emt_frames(8, repeat=(1, 1, 2))
    cfg = from_dict(TrainRunConfig, {
        "model": {"cutoff": 4.0, "n_radial": 4, "n_basis": 6, "hidden": [8]},
        "training": {"max_epochs": 5, "batch_size": 4, "dtype": "float64", "progress": False},
        "uncertainty": {"kind": "none"}, "data": {"valid_fraction": 0.25}, "output": str(out)})
    train_from_config(cfg, frames)
    frames[0].write(out / "start.extxyz")
    return out / "model.pt", out / "start.extxyz"


def test_md_with_a_model_without_uncertainty(plain_model, tmp_path, capsys):
    """Plain MD runs (uncertainties NaN, the threshold never stops it); a bias is refused before
    the first step."""
    from ubmd.cli.md import main
    from ubmd.data import read_structures

    model, start = plain_model
    out = tmp_path / "plain"
    assert main([str(model), str(start), "--out", str(out), "--steps", "20", "--log-every", "5",
                 "--sample-every", "10", "--threshold", "1e-6"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "max_steps" and summary["n_steps"] == 20
    assert summary["has_uncertainty"] is False
    trace = np.load(out / "trace.npz")
    assert len(trace["step"]) == 5 and np.isnan(trace["uncertainty"]).all()
    assert np.isnan(trace["max_atomic_uncertainty"]).all() and np.isfinite(trace["energy"]).all()
    frames = read_structures(out / "candidates.extxyz")
    assert len(frames) == 2 and "atomic_uncertainty" not in frames[0].arrays
    assert np.isnan(frames[0].info["max_atomic_uncertainty"])
    capsys.readouterr()
    biased = tmp_path / "biased"
    assert main([str(model), str(start), "--out", str(biased), "--steps", "20",
                 "--sample-every", "10", "--tau-forces", "0.3"]) == 1
    assert "exported without an uncertainty" in capsys.readouterr().err
    assert not (biased / "trace.npz").exists()



# ------------------------------------------------------------------------ initial data keys
@pytest.mark.campaign
def test_initial_data_with_other_label_keys(tmp_path):
    """initial.data labelled under dft_energy/dft_forces with data.energy_key/forces_key: the
    round-0 data set holds them under the standard names next to the campaign's own labels,
    and training uses both (every structure has an energy label)."""
    from ase.calculators.emt import EMT

    from ubmd.data import get_labels, read_structures

    frames = []
    for k in range(4):
        a = start_cell()
        a.positions += np.random.default_rng(k).normal(scale=0.05, size=a.positions.shape)
        a.calc = EMT()
        a.info["dft_energy"] = a.get_potential_energy() + 0.0
        a.arrays["dft_forces"] = a.get_forces().copy()
        a.calc = None
        frames.append(a)
    from ase.io import write

    write(tmp_path / "init.extxyz", frames)
    d, _ = _campaign(tmp_path, label_budget=12)
    d["initial"] = {**d["initial"], "data": str(tmp_path / "init.extxyz"), "n_perturbed": 7}
    d["data"] = {**d["data"], "energy_key": "dft_energy", "forces_key": "dft_forces"}
    cfg = al_config_from_dict(d)
    run_campaign(cfg)
    ds = read_structures(Path(d["output"]) / "round_000" / "dataset.extxyz")
    assert len(ds) == 12
    labs = [get_labels(a) for a in ds]
    assert all(lab["energy"] is not None and lab["forces"] is not None for lab in labs)
    np.testing.assert_allclose(labs[0]["forces"], frames[0].arrays["dft_forces"], atol=1e-6)
    # without the key names the initial data would carry no labels: a clear error
    (tmp_path / "b").mkdir()
    d2, _ = _campaign(tmp_path / "b", label_budget=12)
    d2["initial"] = {**d2["initial"], "data": str(tmp_path / "init.extxyz")}
    with pytest.raises(ValueError, match="dft_energy"):
        run_campaign(al_config_from_dict(d2))


# ------------------------------------------------------------------ a campaign's first minutes
@pytest.mark.campaign
def test_missing_start_file_then_fixed_config_then_resume_of_a_finished_campaign(tmp_path):
    """A config whose start file is missing stops before its directory exists (no directory
    that later refuses the corrected config as "a different config"); a directory left by such
    a start (config.yaml and nothing done) takes the corrected config; resuming the finished
    campaign adds no line to log.txt."""
    from ubmd.al.campaign import absolute_paths
    from ubmd.al.config import save_al_config

    d, _ = _campaign(tmp_path)
    bad = {**d, "initial": {**d["initial"], "structures": str(tmp_path / "missing.extxyz")}}
    with pytest.raises(FileNotFoundError, match=r"initial.structures: file not found: .*missing"):
        run_campaign(al_config_from_dict(bad), log=lambda s: None)
    out = Path(d["output"])
    assert not out.exists()
    out.mkdir()  # what an older ubmd left behind
    save_al_config(absolute_paths(al_config_from_dict(bad)), out / "config.yaml")
    lines = []
    result = run_campaign(al_config_from_dict(d), log=lines.append, progress=False)
    assert result["finished"] and len(lines) == 1 and lines[0].startswith("round 0: labels 8/8")
    log = (out / "log.txt").read_text().splitlines()
    resumed = resume_campaign(out, log=lines.append, progress=False)
    assert resumed["finished"] and len(lines) == 1
    assert (out / "log.txt").read_text().splitlines() == log


@pytest.mark.parametrize("key, value, match", [
    ("initial", {"data": "nothere.extxyz"}, r"initial.data: file not found"),
    ("reference", {"calculator": {"import": "nothere_module:Calc"}},
     r"reference.calculator: cannot find calculator module"),
    ("walkers", {"engine": "lammps", "lammps": {"command": "no-such-lmp"}},
     r"walkers.lammps.command: LAMMPS executable 'no-such-lmp' not found|plugin not found"),
    ("initial", {"index": "5"}, r"selects no frame|frame"),
    pytest.param("training", {"device": "cuda"}, r"training.device is 'cuda'",
                 marks=pytest.mark.skipif("__import__('torch').cuda.is_available()")),
])
def test_every_input_is_checked_before_the_directory_is_made(tmp_path, key, value, match):
    from ubmd.al.campaign import check_inputs

    d, _ = _campaign(tmp_path)
    d[key] = {**d[key], **value}
    cfg = al_config_from_dict(d)
    with pytest.raises((FileNotFoundError, ImportError, ValueError), match=match):
        check_inputs(cfg)
    with pytest.raises((FileNotFoundError, ImportError, ValueError), match=match):
        run_campaign(cfg, log=lambda s: None, progress=False)
    assert not Path(d["output"]).exists()


@pytest.mark.campaign
@pytest.mark.parametrize("legacy", [False, True])
def test_every_round_model_is_a_run_export_calibrate_select(round0, tmp_path, legacy):
    """A round's train/ is a `ubmd train` run: its config names the round's data set (absolute)
    and an absolute output, so it re-exports in float32, re-calibrates and selects with --model
    from any directory, given as round_NNN or round_NNN/train. A round written before rounds
    recorded their data (data.train: null, relative output) works the same."""
    from ubmd.cli import main as ubmd_main
    from ubmd.model_file import read_metadata
    from ubmd.training import load_run_config

    shutil.copytree(round0["output"], tmp_path / "run")
    rnd = tmp_path / "run" / "round_000"
    cfg_file = rnd / "train" / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    assert cfg["data"]["train"] == str((Path(round0["output"]) / "round_000" / "dataset.extxyz"))
    assert Path(cfg["output"]).is_absolute()
    cfg["data"]["train"] = None if legacy else str(rnd / "dataset.extxyz")
    cfg["output"] = "train" if legacy else str(rnd / "train")
    cfg_file.write_text(yaml.safe_dump(cfg))
    os.chdir(tmp_path)  # (pytest restores the working directory)
    assert load_run_config(rnd).data.train == str(rnd / "dataset.extxyz")
    assert ubmd_main(["export", str(rnd), "-o", "m32.pt", "--dtype", "float32"]) == 0
    meta = read_metadata("m32.pt")
    assert meta["dtype"] == "float32" and meta["uncertainty"] == "posterior"
    assert ubmd_main(["calibrate", str(rnd / "train"), "--alpha", "0.1"]) == 0
    assert json.loads((rnd / "train" / "calibration.json").read_text())["alpha"] == 0.1
    assert yaml.safe_load(cfg_file.read_text())["data"]["train"] == str(rnd / "dataset.extxyz")
    assert ubmd_main(["select", str(rnd / "labelled.extxyz"), "--model", str(rnd), "-b", "2",
                      "--write-selected", "next.extxyz"]) == 0
    assert len((tmp_path / "next.extxyz").read_text().splitlines()) > 4


@pytest.mark.campaign
def test_a_finished_campaign_extended_by_a_new_budget(tmp_path):
    """resume_campaign(label_budget=, max_rounds=): a campaign finished at 8 labels goes on from
    its last round (whose model now samples and selects; its labels and training are not redone)
    to 16; the saved config and the log say so; a budget below the labels used is refused, and
    `ubmd al resume --label-budget` does the same from the command line."""
    import json
    import subprocess
    import sys

    from ubmd.al.config import load_al_config
    from ubmd.errors import InputError

    d, cfg = _campaign(tmp_path)
    out = Path(d["output"])
    assert run_campaign(cfg, log=lambda s: None, progress=False)["labels_used"] == 8
    train_state = json.loads((out / "round_000" / "state.json").read_text())["stages"]["train"]
    with pytest.raises(InputError, match="label_budget 4 is below the 8 labels"):
        resume_campaign(out, log=lambda s: None, progress=False, label_budget=4)
    assert load_al_config(out / "config.yaml").label_budget == 8  # nothing changed
    lines = []
    res = resume_campaign(out, log=lines.append, progress=False, label_budget=16, max_rounds=2)
    assert res["finished"] and res["labels_used"] == 16 and res["n_rounds"] == 2
    saved = load_al_config(out / "config.yaml")
    assert (saved.label_budget, saved.max_rounds) == (16, 2)
    log = (out / "log.txt").read_text()
    assert "resumed with label_budget 8 -> 16, max_rounds 1 -> 2" in log
    assert json.loads((out / "round_000" / "state.json").read_text())["stages"]["train"] == train_state
    assert [ln.split(":")[0] for ln in lines] == ["round 0", "round 1"]  # round 0 now selects
    assert "labels 16/16" in lines[1]
    proc = subprocess.run([sys.executable, "-c", "import sys; from ubmd.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", "al", "resume", str(out),
                           "--label-budget", "10"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "label_budget 10 is below the 16 labels" in proc.stderr
    assert "Traceback" not in proc.stderr
