"""Pure analysis functions and config merging of benchmarks/mil53_campaigns.py.

Fast: synthetic volumes and predictions, YAML merging; no reference calculations, no LAMMPS."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import campaign_common as cc  # noqa: E402
import mil53_campaigns as mc  # noqa: E402


def test_campaign_names_are_the_generated_configs():
    assert len(mc.ALL) == 12
    for name in mc.MAIN:
        assert name in mc.ALL
    assert set(mc.DEFAULT_CAMPAIGNS["tiny"]) <= set(mc.ALL)


@pytest.mark.parametrize("size", ["tiny", "quick", "full"])
def test_campaign_config_applies_size_preset(size):
    cfg = mc.campaign_config("bias_forces_stress_300K_pm2500", size, seed=2)
    for key, value in mc.SIZES[size].items():
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
    # the merged config is a valid AL config (unknown keys would raise)
    from ubmd.al.config import ALConfig
    from ubmd.config import from_dict

    parsed = from_dict(ALConfig, dict(cfg, output="x"))
    assert parsed.label_budget == mc.SIZES[size]["label_budget"]


def test_full_size_is_affordable():
    full = mc.SIZES["full"]
    assert full["label_budget"] <= 160
    assert 60 <= full["training.max_time_s"] <= 120
    assert full["walkers.max_time_s"] <= 120
    assert mc.DEFAULT_CAMPAIGNS["full"] == mc.MAIN and mc.DEFAULT_SEEDS["full"] == [0]


def test_campaign_config_does_not_modify_other_campaigns():
    a = mc.campaign_config("unbiased_600K_p0", "quick", 0)
    b = mc.campaign_config("unbiased_600K_p0", "full", 0)
    assert a["walkers"]["temperature"] == 600.0 and a["walkers"]["pressure"] == 0.0
    assert a["walkers"]["tau_forces"] == 0.0
    assert a["label_budget"] != b["label_budget"]
    with pytest.raises(ValueError, match="unknown campaign"):
        mc.campaign_config("nonexistent", "tiny", 0)


def test_deep_update_and_set_dotted():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    new = {"a": {"b": 2, "e": {"f": 3}}, "g": 4}
    cc.deep_update(base, new)
    assert base == {"a": {"b": 2, "c": [1, 2], "e": {"f": 3}}, "d": 1, "g": 4}
    new["a"]["e"]["f"] = 99  # copied, not aliased
    assert base["a"]["e"]["f"] == 3
    cc.set_dotted(base, "x.y.z", 5)
    cc.set_dotted(base, "a.b", 7)
    assert base["x"] == {"y": {"z": 5}} and base["a"]["b"] == 7


def test_pore_states_boundaries():
    v = [700.0, 1149.9, 1150.0, 1349.9, 1350.0, 1486.0, 1700.0, 1700.1, np.nan]
    assert mc.pore_states(v).tolist() == [0, 0, 1, 1, 2, 2, 2, 3, -1]
    v2 = [799.0, 800.0, 899.0, 900.0, 1000.0, 1001.0]
    assert mc.pore_states(v2, closed_max=800, large_min=900, large_max=1000).tolist() == [0, 1, 1, 2, 2, 3]
    with pytest.raises(ValueError):
        mc.pore_states(v, closed_max=1400, large_min=1300)


def test_state_summary_counts_fractions_visited():
    rng = np.random.default_rng(0)
    closed = rng.normal(750, 20, 30)
    large = rng.normal(1490, 30, 60)
    v = np.concatenate([closed, large, [1250.0], [np.nan]])
    s = mc.state_summary(v)
    assert s["n"] == 91  # NaN left out
    assert s["counts"] == {"closed": 30, "intermediate": 1, "large": 60, "expanded": 0}
    assert s["fractions"]["closed"] == pytest.approx(30 / 91)
    assert sum(s["fractions"].values()) == pytest.approx(1.0)
    assert s["visited"] == {"closed": True, "intermediate": True, "large": True, "expanded": False}
    lp_only = mc.state_summary(large)
    assert lp_only["visited"]["closed"] is False and lp_only["fractions"]["large"] == 1.0
    empty = mc.state_summary([])
    assert empty["n"] == 0 and empty["fractions"]["closed"] is None and not any(empty["visited"].values())


def test_volume_histograms_counts():
    samples = {"a": [610.0, 615.0, 1490.0, 1495.0, 2000.0], "b": [750.0, np.nan]}
    h = mc.volume_histograms(samples, bins=60, value_range=(600.0, 1800.0))
    edges = np.asarray(h["edges"])
    assert len(edges) == 61 and edges[1] - edges[0] == pytest.approx(20.0)
    ca = np.asarray(h["campaigns"]["a"]["counts"])
    assert ca.sum() == 4 and ca[0] == 2 and ca[(1490 - 600) // 20] == 2
    assert h["campaigns"]["a"]["n_outside"] == 1
    dens = np.asarray(h["campaigns"]["a"]["density"])
    assert (dens * np.diff(edges)).sum() == pytest.approx(1.0)
    assert h["campaigns"]["b"]["counts"][(750 - 600) // 20] == 1 and h["campaigns"]["b"]["n"] == 1
    assert mc.volume_histograms({"empty": []}) == {}


def test_n_formula_units():
    assert mc.n_formula_units(152) == 2 and mc.n_formula_units(76) == 1
    with pytest.raises(ValueError):
        mc.n_formula_units(150)


def test_rmse_by_kind():
    n = 152
    kinds = ["perturb_lp", "perturb_lp", "interp"]
    e_ref = np.array([-9700.0, -9701.0, -9702.0])
    e_pred = e_ref + np.array([0.152, -0.152, 0.304])  # 1, 1, 2 meV/atom
    f_ref = [np.zeros((n, 3)) for _ in kinds]
    f_pred = [np.full((n, 3), 0.1), np.full((n, 3), -0.1), np.full((n, 3), 0.3)]
    s_ref = np.zeros((3, 3, 3))
    s_pred = np.stack([np.eye(3) / mc.EV_A3_TO_GPA, np.zeros((3, 3)), np.ones((3, 3)) / mc.EV_A3_TO_GPA])
    r = mc.rmse_by_kind(kinds, [n] * 3, e_pred, e_ref, f_pred, f_ref, s_pred, s_ref)
    assert list(r) == ["all", "perturb_lp", "interp"]
    assert r["perturb_lp"]["energy_rmse_meV_atom"] == pytest.approx(1.0)
    assert r["interp"]["energy_rmse_meV_atom"] == pytest.approx(2.0)
    assert r["all"]["energy_rmse_meV_atom"] == pytest.approx(np.sqrt(6 / 3))
    assert r["perturb_lp"]["forces_rmse"] == pytest.approx(0.1)
    assert r["all"]["forces_max"] == pytest.approx(0.3)
    # stress in GPa over all 9 components: lp frames 3 of 18 components at 1 GPa
    assert r["perturb_lp"]["stress_rmse_GPa"] == pytest.approx(np.sqrt(3 / 18))
    assert r["interp"]["stress_rmse_GPa"] == pytest.approx(1.0)
    assert r["perturb_lp"]["n"] == 2 and r["all"]["n"] == 3


def _fake_campaign(tmp_path: Path, volumes_by_round: dict, n_fu: int = 2) -> Path:
    out = tmp_path / "camp"
    for r, walkers in volumes_by_round.items():
        rd = out / f"round_{r:03d}"
        for w, vols in enumerate(walkers):
            wd = rd / "walkers" / f"w{w:02d}"
            wd.mkdir(parents=True)
            np.savez(wd / "trace.npz", step=np.arange(len(vols)) * 10.0,
                     volume=np.asarray(vols, dtype=float) * n_fu)
        (rd / "summary.json").write_text(json.dumps({"round": r, "labels_used": 8 * (r + 1)}))
    return out


def test_traced_volumes_from_trace_npz(tmp_path):
    out = _fake_campaign(tmp_path, {0: [[1490.0, 1480.0], [1500.0]], 1: [[1200.0, 760.0, 750.0]]})
    rounds = cc.load_rounds(out)
    assert [s["round"] for s in rounds] == [0, 1]
    v = mc.traced_volumes(out, rounds, n_fu=2)
    assert sorted(v) == [0, 1] and sorted(v[0]) == [0, 1]
    assert v[0][0].tolist() == [1490.0, 1480.0]
    allv = np.concatenate([x for ws in v.values() for x in ws.values()])
    s = mc.state_summary(allv)
    assert s["counts"] == {"closed": 2, "intermediate": 1, "large": 3, "expanded": 0}


def test_curve_rounds():
    assert cc.curve_rounds(1, 3) == [0]
    assert cc.curve_rounds(16, 5) == [0, 4, 8, 11, 15]
    assert cc.curve_rounds(2, 2) == [0, 1]


def test_metadynamics_driver_selection_and_missing_campaign(tmp_path, capsys):
    import mil53_metadynamics as md

    assert md.select_frames(list(range(5)), 8, "uniform", None, {}, [], 0) == [0, 1, 2, 3, 4]
    idx = md.select_frames(list(range(101)), 5, "uniform", None, {}, [], 0)
    assert idx == [0, 25, 50, 75, 100]
    # pressures alternate between runs like the campaign's walkers
    assert [md._cyclic([2500.0, -2500.0], k) for k in range(3)] == [2500.0, -2500.0, 2500.0]
    assert md.main(["--size", "tiny", "--runs", str(tmp_path)]) == 2
    assert "has not finished" in capsys.readouterr().err
