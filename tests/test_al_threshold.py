"""walkers.threshold_relative: a round's stop threshold scaled to the model's own uncertainty."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lammps_helpers import requires_plugin
from test_al import campaign_dict, rounds
from ubmd.al import al_config_from_dict, resume_campaign, run_campaign
from ubmd.al.config import WalkerConfig
from ubmd.config import check
from ubmd.al.threshold import load_or_compute, max_atomic_uncertainties, round_threshold


def test_round_threshold_is_k_times_the_median_with_the_absolute_as_floor(tiny_trained, cu_frames):
    cfg, summary = tiny_trained
    model = Path(cfg.output) / "model.pt"
    frames = cu_frames[:10]
    umax = max_atomic_uncertainties(model, frames)
    assert umax.shape == (10,) and (umax > 0).all()
    # per structure: the largest per-atom value the calculator reports for it
    from ubmd.calculator import UBMDCalculator

    calc = UBMDCalculator(model, uncertainty="atomic")
    b = frames[3].copy()
    b.calc = calc
    b.get_potential_energy()
    assert umax[3] == pytest.approx(calc.results["atomic_uncertainty"].max(), rel=1e-12)

    low = WalkerConfig(threshold=1e-9, threshold_relative=2.5)
    rec = round_threshold(low, model, frames)
    assert rec["reference_level"] == pytest.approx(np.median(umax), rel=1e-12)
    assert rec["threshold"] == pytest.approx(2.5 * np.median(umax), rel=1e-12)
    assert rec["n_structures"] == 10 and rec["absolute"] == 1e-9
    assert (umax < rec["threshold"]).mean() >= 0.5
    high = WalkerConfig(threshold=1e6, threshold_relative=2.5)
    assert round_threshold(high, model, frames)["threshold"] == 1e6  # the floor wins
    plain = WalkerConfig(threshold=1.5)
    assert round_threshold(plain, model, []) == {"threshold": 1.5, "absolute": 1.5,
                                                 "relative": None}
    with pytest.raises(ValueError, match="labelled structures"):
        round_threshold(low, model, [])


def test_threshold_record_is_reused_and_recomputed_when_settings_change(tiny_trained, cu_frames,
                                                                        tmp_path):
    cfg, _ = tiny_trained
    model = Path(cfg.output) / "model.pt"
    p = WalkerConfig(threshold=1e-9, threshold_relative=2.0)
    rec, fresh = load_or_compute(tmp_path, p, model, cu_frames[:6])
    assert fresh
    stored = json.loads((tmp_path / "threshold.json").read_text())
    assert stored == rec
    # a resumed round uses the stored value, even if the data at hand differ (never read them)
    def fail():
        raise AssertionError("the data must not be read when the record is reused")
    assert load_or_compute(tmp_path, p, model, fail) == (rec, False)
    p2 = WalkerConfig(threshold=1e-9, threshold_relative=4.0)
    rec2, fresh2 = load_or_compute(tmp_path, p2, model, cu_frames[:6])
    assert fresh2 and rec2["threshold"] == pytest.approx(2 * rec["threshold"], rel=1e-12)
    p3 = WalkerConfig(threshold=1e3, threshold_relative=4.0)  # the floor changed: recomputed
    rec3, fresh3 = load_or_compute(tmp_path, p3, model, cu_frames[:6])
    assert fresh3 and rec3["threshold"] == 1e3


def test_level_is_measured_on_a_seeded_subset_of_large_datasets(tiny_trained, cu_frames,
                                                               monkeypatch):
    import ubmd.al.threshold as T

    cfg, _ = tiny_trained
    model = Path(cfg.output) / "model.pt"
    monkeypatch.setattr(T, "MAX_STRUCTURES", 5)
    p = WalkerConfig(threshold=1e-9, threshold_relative=1.0)
    a = T.round_threshold(p, model, cu_frames[:12], seed=3)
    b = T.round_threshold(p, model, cu_frames[:12], seed=3)
    assert a == b and a["n_structures"] == 5
    umax = T.max_atomic_uncertainties(model, cu_frames[:12])
    assert any(a["reference_level"] == pytest.approx(x, rel=1e-12) for x in umax)  # odd count


def test_lammps_deck_stops_at_the_round_threshold_to_full_precision(tmp_path):
    from test_al import start_cell
    from ubmd.al.threshold import walker_params
    from ubmd.md import WalkerTask
    from ubmd.md.lammps_engine import deck_text

    p = walker_params(WalkerConfig(engine="lammps", threshold=1.5, threshold_relative=2.0),
                      {"threshold": 2.123456789012345})
    task = WalkerTask(0, "lammps", "/m/model.pt", start_cell(), str(tmp_path), 300.0, 0.0, 1, p,
                      species=["Al", "Cu"])
    deck = deck_text(task, Path("/p/ubmdplugin.so"), True, "p p p")
    assert "fix stop all halt 1 v_umax > 2.123456789012345 error continue" in deck


def test_lammps_deck_without_a_threshold_never_stops_on_u(tmp_path):
    """run_md's default threshold is infinite: the deck then has no ``fix halt`` on u (LAMMPS
    rejects ``> inf``) and no reflection loop, whatever walkers.reflections says."""
    from test_al import start_cell
    from ubmd.md import MDSettings, WalkerTask
    from ubmd.md.lammps_engine import deck_text

    for reflections in (0, 5):
        p = MDSettings(threshold=float("inf"), reflections=reflections, max_steps=50)
        task = WalkerTask(0, "lammps", "/m/model.pt", start_cell(), str(tmp_path), 300.0, 0.0, 1,
                          p, species=["Al", "Cu"])
        deck = deck_text(task, Path("/p/ubmdplugin.so"), True, "p p p")
        assert "v_umax >" not in deck and "inf" not in deck
        assert "run 50\n" in deck and "label segment" not in deck


@requires_plugin
def test_run_md_in_lammps_without_a_threshold(tiny_trained, cu_frames, tmp_path):
    """ubmd.run_md(engine="lammps") with no threshold runs all its steps (it stopped with a
    LAMMPS input error before)."""
    import ubmd

    run = ubmd.run_md(tiny_trained[1]["model_file"], cu_frames[0], tmp_path / "w",
                      engine="lammps", max_steps=20, log_every=5, sample_every=10,
                      tau_forces=0.25, window=5, runaway_factor=None)  # a tiny model heats
    assert run.summary["stop_reason"] == "max_steps", run.summary
    assert run.summary["n_steps"] == 20 and list(run.trace["step"]) == [0, 5, 10, 15, 20]


@pytest.mark.parametrize("bad", [0, -1.0, "x"])
def test_threshold_relative_validation(bad):
    with pytest.raises(ValueError, match="threshold_relative"):
        check(WalkerConfig(threshold_relative=bad), "walkers")
    assert check(WalkerConfig(threshold_relative="3"), "walkers").threshold_relative == 3.0


@pytest.mark.campaign
def test_campaign_with_relative_threshold_lets_walkers_run(tmp_path):
    """An absolute threshold far below the model's own level stops every walker at its first
    step; the relative one moves the threshold to k times that level, so walkers run, each one
    stops only above the round's threshold, and the round records which threshold it used."""
    walkers = {"threshold": 1e-6, "max_steps": 40, "sample_every": 5, "reflections": 0}
    (tmp_path / "a").mkdir()
    (tmp_path / "r").mkdir()
    d_abs = campaign_dict(tmp_path / "a", label_budget=16, max_rounds=2, walkers=walkers,
                          training={"max_epochs": 10})
    d_rel = campaign_dict(tmp_path / "r", label_budget=16, max_rounds=2,
                          walkers={**walkers, "threshold_relative": 3.0},
                          training={"max_epochs": 10})
    run_campaign(al_config_from_dict(d_abs), log=lambda s: None)
    lines = []
    run_campaign(al_config_from_dict(d_rel), log=lines.append)
    r_abs, r_rel = rounds(d_abs["output"])[0], rounds(d_rel["output"])[0]
    assert all(w["n_steps"] == 1 and w["stop_reason"] == "threshold" for w in r_abs["walkers"])
    assert r_abs["threshold"]["threshold"] == 1e-6
    thr = r_rel["threshold"]
    assert thr["relative"] == 3.0 and thr["threshold"] == pytest.approx(3 * thr["reference_level"])
    assert max(w["n_steps"] for w in r_rel["walkers"]) > 5
    for w in r_rel["walkers"]:
        if w["stop_reason"] == "threshold":
            assert w["max_atomic_uncertainty"] > thr["threshold"]
        trace = np.load(Path(d_rel["output"]) / "round_000" / "walkers" / f"w{w['index']:02d}"
                        / "trace.npz")
        tested = (trace["step"] > 0) & (trace["step"] < w["n_steps"])  # step 0 is not tested
        before = trace["max_atomic_uncertainty"][tested]
        assert (before <= thr["threshold"]).all()
    assert f"by u > {thr['threshold']:.3g} eV/Å" in lines[0]
    # the report draws the threshold panel next to the stop times (a two-panel, wider figure)
    from ubmd.al.report import plot_walker_stops

    wide = plot_walker_stops(rounds(d_rel["output"]), tmp_path / "rel.png")
    narrow = plot_walker_stops(rounds(d_abs["output"]), tmp_path / "abs.png")
    from PIL import Image

    assert Image.open(wide).size[0] > 1.8 * Image.open(narrow).size[0]
    # an interrupted sample stage resumes with the stored threshold: w00 is rerun (its summary
    # removed, the stage unmarked) under a stored record changed to a huge value, so it must run
    # to max_steps; the record itself is not recomputed
    out = Path(d_rel["output"])
    rec_path = out / "round_000" / "walkers" / "threshold.json"
    rec = json.loads(rec_path.read_text())
    rec_path.write_text(json.dumps({**rec, "threshold": 1e9}))
    state_path = out / "round_000" / "state.json"
    state = json.loads(state_path.read_text())
    del state["stages"]["sample"]
    state_path.write_text(json.dumps(state))
    (out / "round_000" / "walkers" / "w00" / "summary.json").unlink()
    assert resume_campaign(out, log=lambda s: None)["finished"]
    w00 = json.loads((out / "round_000" / "walkers" / "w00" / "summary.json").read_text())
    assert w00["stop_reason"] == "max_steps" and w00["n_steps"] == 40
    assert json.loads(rec_path.read_text())["threshold"] == 1e9
    assert rounds(out)[0]["threshold"]["threshold"] == 1e9
