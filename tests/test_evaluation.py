"""Test-set scoring of a training run's members (ubmd.evaluation: predict_members, error_table,
score_members), as the AL benchmarks score every campaign's models. Fast: a tiny EMT model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.units import GPa

from ubmd.evaluation import error_table, evaluate_model_file, predict_members, score_members


def test_error_table_overall_and_per_group():
    n = 152
    kinds = ["perturb_lp", "perturb_lp", "interp"]
    e_ref = np.array([-9700.0, -9701.0, -9702.0])
    e_pred = e_ref + np.array([0.152, -0.152, 0.304])  # 1, 1, 2 meV/atom
    f_ref = [np.zeros((n, 3)) for _ in kinds]
    f_pred = [np.full((n, 3), 0.1), np.full((n, 3), -0.1), np.full((n, 3), 0.3)]
    s_ref = np.zeros((3, 3, 3))
    s_pred = np.stack([np.eye(3) * GPa, np.zeros((3, 3)), np.ones((3, 3)) * GPa])  # eV/Å^3
    r = error_table(kinds, [n] * 3, e_pred, e_ref, f_pred, f_ref, s_pred, s_ref)
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
    no_stress = error_table(["all"] * 3, [n] * 3, e_pred, e_ref, f_pred, f_ref)
    assert list(no_stress) == ["all"] and "stress_rmse_GPa" not in no_stress["all"]
    assert no_stress["all"] == {k: v for k, v in r["all"].items() if k != "stress_rmse_GPa"}


def test_score_members_agrees_with_the_model_file(tiny_trained, cu_frames):
    cfg, _ = tiny_trained
    run = Path(cfg.output)
    frames = cu_frames[:6]
    for k, a in enumerate(frames):
        a.info["kind"] = "a" if k % 2 else "b"
    e, f, s = predict_members(run / "members.pt", frames, stress=True, batch_size=4)
    assert e.shape == (6,) and len(f) == 6 and f[0].shape == (len(frames[0]), 3)
    assert s.shape == (6, 3, 3)
    assert predict_members(run / "members.pt", frames)[2] is None
    res = score_members(run, frames, group_key="kind", stress=True, check_model_file=4)
    assert list(res) == ["all", "b", "a", "check_model_file"]
    assert res["a"]["n"] == res["b"]["n"] == 3 and res["all"]["n"] == 6
    ref = evaluate_model_file(run / "model.pt", frames, progress=False)
    assert res["all"]["forces_rmse"] == pytest.approx(ref["forces_rmse"], rel=1e-6)
    assert res["all"]["energy_rmse_meV_atom"] == pytest.approx(1000 * ref["energy_rmse"], rel=1e-6)
    assert res["all"]["stress_rmse_GPa"] == pytest.approx(ref["stress_rmse"] / GPa, rel=1e-6)
    chk = res["check_model_file"]
    for q in ("energy_rmse_meV_atom", "forces_rmse", "stress_rmse_GPa"):
        assert chk[f"{q}_batched"] == pytest.approx(chk[f"{q}_model_file"], rel=1e-6), q
    plain = score_members(run, frames)
    assert list(plain) == ["all"] and plain["all"]["forces_rmse"] == res["all"]["forces_rmse"]


def test_evaluate_writes_predictions_parity_plots_and_explains_its_numbers(tiny_trained,
                                                                          cu_frames, tmp_path):
    """`ubmd evaluate -o DIR`: predictions.extxyz (the model's values and the labels per
    structure), parity.png, evaluation.json with the unit and the meaning of every number."""
    import json

    from ubmd.cli import main
    from ubmd.data import read_structures, write_structures

    cfg, summary = tiny_trained
    write_structures(tmp_path / "test.extxyz", cu_frames[:6])
    assert main(["evaluate", summary["model_file"], str(tmp_path / "test.extxyz"),
                 "-o", str(tmp_path / "ev")]) == 0
    res = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert res["units"] == {"energy_rmse": "eV/atom", "energy_mae": "eV/atom",
                            "forces_rmse": "eV/Å", "forces_mae": "eV/Å", "forces_max": "eV/Å",
                            "stress_rmse": "eV/Å^3", "stress_rmse_GPa": "GPa",
                            "uncertainty_total": "eV/atom", "uncertainty_atomic": "eV/Å"}
    for key in ("energy_rmse", "rmu", "coverage", "miscalibration_area", "spearman"):
        assert key in res["explain"], key
    assert "root mean square of u" in res["explain"]["rmu"]
    assert res["stress_rmse_GPa"] == pytest.approx(res["stress_rmse"] / GPa)
    pred = read_structures(tmp_path / "ev" / "predictions.extxyz")
    assert len(pred) == 6
    a, ref = pred[0], cu_frames[0]
    assert a.info["REF_energy"] == pytest.approx(ref.get_potential_energy())
    np.testing.assert_allclose(a.arrays["REF_forces"], ref.get_forces(), atol=1e-7)  # extxyz
    e = evaluate_model_file(summary["model_file"], cu_frames[:6], progress=False)
    errors = [(f.info["ubmd_energy"] - f.info["REF_energy"]) / len(f) for f in pred]
    assert np.sqrt(np.mean(np.square(errors))) == pytest.approx(e["energy_rmse"], rel=1e-6)
    assert a.arrays["ubmd_forces"].shape == (len(a), 3) and len(a.info["ubmd_stress"]) == 6
    assert a.arrays["ubmd_atomic_uncertainty"].shape == (len(a),)
    assert (tmp_path / "ev" / "parity.png").stat().st_size > 20_000
