"""Training, the training pipeline on disk and the train/export/evaluate/calibrate CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import emt_frames
from ubmd.config import ModelConfig, TrainingConfig, TrainRunConfig, from_dict
from ubmd.data import (GraphDataset, read_structures, species_map_from, split_indices,
                       write_structures)
from ubmd.prediction import evaluate_errors
from ubmd.training.ensemble import train_ensemble
from ubmd.training.trainer import Ema, fit_statistics, train_model
from ubmd.model import MLIP


def _train_cu(cu_frames, **training):
    """Errors of an untrained model (fitted statistics) and of one trained for 40 epochs."""
    sm = species_map_from(cu_frames)
    data = GraphDataset(cu_frames, 4.0, sm)
    split = split_indices(len(data), 6, seed=0)
    train, valid = data.subset(split.train), data.subset(split.valid)
    mcfg = ModelConfig(cutoff=4.0, n_radial=4, n_basis=6, hidden=[16, 16])
    tcfg = TrainingConfig(max_epochs=40, batch_size=6, lr=1e-2, lr_final=1e-3, dtype="float64",
                          progress=False, **training)
    init = MLIP([13, 29], 4.0, 4, 6, [16, 16], seed=0).double()
    fit_statistics(init, train)
    res = train_model(train, valid, mcfg, tcfg, seed=0)
    return evaluate_errors(init, valid), evaluate_errors(res.model, valid), res


def test_training_lowers_validation_error(cu_frames):
    before, after, res = _train_cu(cu_frames)
    # an untrained model with fitted shifts predicts forces ~ noise of RMS |F|;
    # a few dozen epochs must cut the validation force error at least 3x
    assert after["forces_rmse"] < before["forces_rmse"] / 3, (before, after)
    assert res.history and res.best_epoch <= len(res.history)
    assert after["energy_rmse"] < before["energy_rmse"]


def test_early_stopping_restores_best(cu_frames):
    sm = species_map_from(cu_frames)
    data = GraphDataset(cu_frames[:10], 4.0, sm)
    tr, va = data.subset(range(7)), data.subset(range(7, 10))
    tcfg = TrainingConfig(max_epochs=30, batch_size=7, lr=5e-2, lr_final=5e-2, dtype="float64",
                          progress=False, patience=3)
    res = train_model(tr, va, ModelConfig(cutoff=4.0, n_radial=3, n_basis=5, hidden=[8]), tcfg)
    assert len(res.history) < 30 or res.best_epoch < 29
    score = evaluate_errors(res.model, va)
    best = min(h["energy_mae"] + h["forces_mae"] for h in res.history)
    assert abs(score["energy_mae"] + score["forces_mae"] - best) < 1e-9


@pytest.mark.parametrize("ema", [0.0, 0.5])
def test_patience_counts_epochs_since_last_improvement(cu_frames, ema):
    """Training stops exactly when ``patience`` epochs have passed without a new best validation
    score (recomputed from the recorded history), or at max_epochs."""
    sm = species_map_from(cu_frames)
    data = GraphDataset(cu_frames[:10], 4.0, sm)
    tr, va = data.subset(range(7)), data.subset(range(7, 10))
    patience, max_epochs = 4, 25
    tcfg = TrainingConfig(max_epochs=max_epochs, batch_size=7, lr=2e-2, lr_final=2e-2,
                          dtype="float64", progress=False, patience=patience, ema_decay=ema)
    res = train_model(tr, va, ModelConfig(cutoff=4.0, n_radial=3, n_basis=5, hidden=[8]), tcfg)
    best, since, stop = float("inf"), 0, max_epochs - 1
    for h in res.history:
        score = h["energy_mae"] + h["forces_mae"]
        best, since = (score, 0) if score < best else (best, since + 1)
        if since >= patience:
            stop = h["epoch"]
            break
    assert res.history[-1]["epoch"] == stop
    assert res.best_epoch >= patience  # improved after the first epochs: a real test of the count


def test_parallel_ensemble_equals_sequential(cu_frames):
    """Members trained in 2 processes are bit-identical to members trained one after another."""
    sm = species_map_from(cu_frames)
    data = GraphDataset(cu_frames[:12], 4.0, sm)
    tr, va = data.subset(range(9)), data.subset(range(9, 12))
    mcfg = ModelConfig(cutoff=4.0, n_radial=3, n_basis=5, hidden=[8])
    seq = TrainingConfig(max_epochs=6, batch_size=3, dtype="float64", progress=False, n_models=2)
    par = TrainingConfig(**{**seq.__dict__, "n_workers": 2})
    a = train_ensemble(tr, va, mcfg, seq)
    b = train_ensemble(tr, va, mcfg, par)
    assert len(a) == len(b) == 2
    for ra, rb in zip(a, b):
        assert ra.best_epoch == rb.best_epoch and len(ra.history) == len(rb.history)
        for (k, ta), tb in zip(ra.model.state_dict().items(), rb.model.state_dict().values()):
            assert torch.equal(ta, tb), k
    # the two members differ (different seeds)
    assert not torch.equal(a[0].model.layers[0].weight, a[1].model.layers[0].weight)


def test_ema_averages_and_swaps():
    """EMA with the warm-up decay d_t = min(d, (1+t)/(10+t)) against a hand computation, and
    swap() twice restores the raw weights."""
    model = MLIP([29], 3.0, 2, 3, [4], seed=0).double()
    ema = Ema(model, 0.9)
    p0 = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)  # t = 1: d = min(0.9, 2/11)
    d = 2.0 / 11.0
    for s, a in zip(ema.shadow, p0):
        assert torch.allclose(s, d * a + (1 - d) * (a + 1.0))
    raw = [p.detach().clone() for p in model.parameters()]
    ema.swap(model)
    assert all(torch.allclose(p, s) for p, s in zip(model.parameters(), [d * a + (1 - d) * (a + 1)
                                                                           for a in p0]))
    ema.swap(model)
    assert all(torch.equal(p, r) for p, r in zip(model.parameters(), raw))
    with pytest.raises(ValueError):
        Ema(model, 1.5)


def test_ema_and_weight_decay_train(cu_frames):
    """Training with EMA and weight decay runs, lowers the error and keeps the EMA weights."""
    before, after, res = _train_cu(cu_frames, ema_decay=0.9, weight_decay=1e-3)
    assert after["forces_rmse"] < before["forces_rmse"] / 3, (before, after)
    best = min(h["energy_mae"] + h["forces_mae"] for h in res.history)
    assert abs(after["energy_mae"] + after["forces_mae"] - best) < 1e-9


def test_pipeline_outputs(tiny_trained):
    cfg, summary = tiny_trained
    out = Path(cfg.output)
    for name in ("config.yaml", "members.pt", "model.pt", "calibration.json", "errors.json",
                 "history.json"):
        assert (out / name).exists(), name
    saved = yaml.safe_load(open(out / "config.yaml"))
    assert saved["model"]["cutoff"] == 4.0
    assert summary["calibration"]["total"] > 0
    assert "uncertainty_quality_atomic" in summary


def test_cli_train_export_evaluate(tmp_path, capsys):
    from ubmd.cli import main

    frames = emt_frames(n=12, seed=5)
    write_structures(tmp_path / "data.extxyz", frames)
    cfg = {"data": {"train": str(tmp_path / "data.extxyz"), "valid_fraction": 0.25},
           "model": {"cutoff": 4.0, "n_radial": 3, "n_basis": 5, "hidden": [8, 8]},
           "training": {"max_epochs": 3, "batch_size": 4, "progress": False},
           "output": str(tmp_path / "run")}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "c.yaml"), "--set", "training.max_epochs=2"]) == 0
    assert (tmp_path / "run" / "model.pt").exists()
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "m32.pt"),
                 "--dtype", "float32", "--uncertainty", "distance"]) == 0
    assert main(["evaluate", str(tmp_path / "m32.pt"), str(tmp_path / "data.extxyz"),
                 "-o", str(tmp_path / "eval")]) == 0
    res = json.load(open(tmp_path / "eval" / "evaluation.json"))
    assert res["n_structures"] == 12 and res["forces_rmse"] > 0
    assert (tmp_path / "eval" / "reliability_atomic.png").stat().st_size > 5000
    assert main(["calibrate", str(tmp_path / "run"), "--method", "max_likelihood"]) == 0
    cal = json.load(open(tmp_path / "run" / "calibration.json"))
    assert cal["method"] == "max_likelihood"


def test_run_trained_from_memory_can_be_re_exported(tmp_path):
    """train_from_config on frames in memory (data.train null: what benchmark scripts and
    AL-like drivers do) keeps the frames with the run, so ``ubmd export`` re-fits the
    uncertainty on the same split and gives the same predictions in float32."""
    import ubmd
    from ubmd.cli import main
    from ubmd.config import to_dict
    from ubmd.training import train_from_config

    frames = emt_frames(n=12, seed=7)
    cfg = from_dict(TrainRunConfig, {
        "data": {"valid_fraction": 0.25},
        "model": {"cutoff": 4.0, "n_radial": 3, "n_basis": 5, "hidden": [8, 8]},
        "training": {"max_epochs": 2, "batch_size": 4, "progress": False},
        "output": str(tmp_path / "run")})
    assert cfg.data.train is None
    train_from_config(cfg, frames)
    saved = yaml.safe_load(open(tmp_path / "run" / "config.yaml"))
    assert Path(saved["data"]["train"]) == (tmp_path / "run" / "data.extxyz").resolve()
    assert len(read_structures(saved["data"]["train"])) == 12
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "m32.pt"),
                 "--dtype", "float32"]) == 0
    from ubmd.calculator import UBMDCalculator

    e = []
    for model in (tmp_path / "run" / "model.pt", tmp_path / "m32.pt"):
        a = frames[0].copy()
        a.calc = UBMDCalculator(str(model))
        e.append((a.get_potential_energy(), a.calc.results["uncertainty"]))
    assert e[1][0] == pytest.approx(e[0][0], rel=1e-5)
    assert e[1][1] == pytest.approx(e[0][1], rel=1e-3)
    # labels under other names (data.energy_key / forces_key): written under the standard ones
    custom = []
    for a in frames:
        b = a.copy()
        b.info["REF_E"] = a.get_potential_energy()
        b.arrays["REF_F"] = a.get_forces()
        b.calc = None
        custom.append(b)
    cfg2 = from_dict(TrainRunConfig, {**to_dict(cfg), "output": str(tmp_path / "run2"),
                                      "data": {"valid_fraction": 0.25, "energy_key": "REF_E",
                                               "forces_key": "REF_F"}})
    train_from_config(cfg2, custom)
    assert main(["export", str(tmp_path / "run2"), "-o", str(tmp_path / "m2.pt")]) == 0
    cal = [ubmd.read_metadata(p)["calibration_atomic"]
           for p in (tmp_path / "run2" / "model.pt", tmp_path / "m2.pt")]
    assert cal[1] == pytest.approx(cal[0], rel=1e-6)  # same split, same labels


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="valid keys"):
        from_dict(TrainRunConfig, {"training": {"max_epoch": 3}})


def test_energy_weighted_final_stage(cu_frames):
    """final_fraction 0.4 of 10 epochs: epochs 6-9 train with w_E = final_weight_energy (the
    training loss jumps by about that factor's share at the switch) and the kept checkpoint is
    the best of that stage; an early stop before it still ends with the stage; bad values fail."""
    from ubmd.training.trainer import train_model

    sm = species_map_from(cu_frames)
    data = GraphDataset(cu_frames, 4.0, sm)
    train, valid = data.subset(range(18)), data.subset(range(18, 24))
    mc = ModelConfig(cutoff=4.0, n_radial=4, n_basis=6, hidden=[16, 16])
    base = dict(max_epochs=10, batch_size=6, lr=5e-3, dtype="float64", progress=False,
                patience=100)
    res = train_model(train, valid, mc, TrainingConfig(**base, final_fraction=0.4,
                                                       final_weight_energy=1e4))
    assert res.final_stage_epoch == 6 and res.best_epoch >= 6
    loss = [h["loss"] for h in res.history]
    assert loss[6] > 20 * loss[5], loss
    plain = train_model(train, valid, mc, TrainingConfig(**base))
    assert plain.final_stage_epoch is None
    assert [h["loss"] for h in plain.history][:6] == loss[:6]  # identical before the switch
    # frozen weights (lr 1e-30): no epoch improves, patience 1 stops after epoch 1, the final
    # stage runs from epoch 2 (its first epoch is its best) and stops after epoch 3
    frozen = {**base, "patience": 1, "max_epochs": 40, "lr": 1e-30, "lr_final": 1e-31}
    early = train_model(train, valid, mc, TrainingConfig(**frozen, final_fraction=0.1))
    assert early.final_stage_epoch == 2 and early.best_epoch == 2 and len(early.history) == 4
    with pytest.raises(ValueError, match="final_fraction"):
        train_model(train, valid, mc, TrainingConfig(**base, final_fraction=1.0))


def test_a_total_calibration_on_few_validation_structures_is_warned_about(tmp_path):
    """One validation structure (e.g. a campaign round whose labels failed) calibrates the
    total uncertainty on one energy error: said, not hidden."""
    from ubmd.training import train_from_config

    frames = emt_frames(n=4, seed=3)
    cfg = from_dict(TrainRunConfig, {
        "model": {"cutoff": 4.0, "n_radial": 3, "n_basis": 5, "hidden": [8, 8]},
        "training": {"max_epochs": 2, "batch_size": 4, "progress": False},
        "data": {"valid_fraction": 0.25}, "output": str(tmp_path / "run")})
    with pytest.warns(UserWarning, match=r"calibrated on 1 validation structure\(s\) \(of 4, "
                                         r"data.valid_fraction 0.25\).*rough guess"):
        train_from_config(cfg, frames)
