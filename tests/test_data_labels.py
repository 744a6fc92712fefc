"""Labels: per-structure/per-atom label masks in batches, the loss and the errors; label key names
(energy/forces/stress/virial keys, REF_* and virial conventions); the refusal of unlabelled data;
validation splits that calibration needs; float32 training with large absolute energies."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from conftest import emt_frames
from ubmd import keys as K
from ubmd.prediction import predict
from ubmd.config import ModelConfig, TrainingConfig, TrainRunConfig, UncertaintyConfig, from_dict
from ubmd.data import (GraphDataset, get_labels, read_structures, species_map_from, split_indices,
                       write_structures)
from ubmd.model import new_model
from ubmd.prediction import evaluate_errors
from ubmd.training.loss import StepLoss
from ubmd.training.trainer import fit_statistics, train_model

MODEL = ModelConfig(cutoff=4.0, n_radial=3, n_basis=5, hidden=[8])


def _relabel(frames, energy=True, forces=True, stress=True, offsets=None):
    """Copies with a single-point calculator holding the chosen labels; ``offsets``: {Z: eV}
    added to the energy per atom of element Z."""
    out = []
    for a in frames:
        e = a.get_potential_energy()
        if offsets:
            e += sum(offsets.get(int(z), 0.0) for z in a.numbers)
        b = a.copy()
        b.calc = SinglePointCalculator(
            b, energy=e if energy else None, forces=a.get_forces() if forces else None,
            stress=a.get_stress() if stress else None)
        out.append(b)
    return out


@pytest.fixture(scope="module")
def small_frames():
    return emt_frames(n=10, seed=3, repeat=(1, 1, 2))


# ------------------------------------------------------------------ masks in loss and errors
def test_missing_labels_are_masked_in_the_batch_loss_and_gradient(small_frames):
    """A batch of 4 structures, one without forces and one without energy: the batch keeps both
    labels (with masks), and its loss and gradients equal a reference computed from the labelled
    structures alone: (w_E SSE(E of the 3 with energy) + w_F SSE(F of the 3 with forces)) / 4."""
    frames = (_relabel(small_frames[:1], forces=False) + _relabel(small_frames[1:2], energy=False)
              + small_frames[2:4])
    data = GraphDataset(frames, 4.0, species_map_from(frames))
    (batch,) = list(data.batches(4))
    assert K.ENERGY in batch and K.FORCES in batch
    assert batch[K.ENERGY_MASK].tolist() == [True, False, True, True]
    n0 = len(frames[0])
    assert not batch[K.FORCES_MASK][:n0].any() and batch[K.FORCES_MASK][n0:].all()

    model = new_model(data.species_map, MODEL, 0, torch.float64)
    fit_statistics(model, data)
    cfg = TrainingConfig(weight_energy=3.0, weight_forces=5.0)
    model.zero_grad()
    loss = StepLoss(model, cfg, has_virial=False)(batch)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    ref = 0.0
    for k, a in enumerate(frames):
        one = GraphDataset([a], 4.0, data.species_map)
        (b,) = list(one.batches(1))
        pred = predict(model, b, forces=True, virial=False, create_graph=True)
        if K.ENERGY in b:
            ref = ref + 3.0 * ((pred[K.ENERGY] - b[K.ENERGY]) ** 2).sum()
        if K.FORCES in b:
            ref = ref + 5.0 * ((pred[K.FORCES] - b[K.FORCES]) ** 2).sum()
    ref = ref / 4
    ref.backward()
    assert float(loss) == pytest.approx(float(ref), rel=1e-12)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-10, atol=1e-14)


def test_errors_count_only_labelled_structures(small_frames):
    """Energy errors over the structures with energies, force errors over the atoms of the
    structures with forces, whatever the batching."""
    frames = (small_frames[:3] + _relabel(small_frames[3:4], forces=False)
              + _relabel(small_frames[4:5], energy=False) + small_frames[5:8])
    data = GraphDataset(frames, 4.0, species_map_from(frames))
    model = new_model(data.species_map, MODEL, 0, torch.float64)
    fit_statistics(model, data)
    with_e = data.subset([k for k in range(len(frames)) if k != 4])
    with_f = data.subset([k for k in range(len(frames)) if k != 3])
    ref_e, ref_f = evaluate_errors(model, with_e, 1), evaluate_errors(model, with_f, 1)
    for bs in (1, 3, 32):
        err = evaluate_errors(model, data, bs)
        for key in ("energy_rmse", "energy_mae"):
            assert err[key] == pytest.approx(ref_e[key], rel=1e-12), (bs, key)
        for key in ("forces_rmse", "forces_mae", "forces_max"):
            assert err[key] == pytest.approx(ref_f[key], rel=1e-12), (bs, key)


def test_training_with_a_frame_without_forces_trains_on_every_force_label(small_frames):
    """One frame of 10 without forces, batch size 4 (frozen weights): the recorded epoch loss is
    the mean over the shuffled batches of (w_E SSE(E) + w_F SSE(F) of the frames that have forces)
    / batch size, from per-frame errors computed one frame at a time."""
    frames = _relabel(small_frames[:1], forces=False, stress=False) + _relabel(
        small_frames[1:], stress=False)
    data = GraphDataset(frames, 4.0, species_map_from(frames))
    cfg = TrainingConfig(max_epochs=1, batch_size=4, lr=1e-30, lr_final=1e-30, dtype="float64",
                         progress=False)
    res = train_model(data, data.subset([1, 2]), MODEL, cfg)
    per_frame = []
    for g in data.graphs:
        (b,) = list(data.derived([], [g]).batches(1))
        pred = predict(res.model, b, forces=True, virial=False)
        sse = cfg.weight_energy * float(((pred[K.ENERGY] - b[K.ENERGY]) ** 2).sum())
        if K.FORCES in b:
            sse += cfg.weight_forces * float(((pred[K.FORCES] - b[K.FORCES]) ** 2).sum())
        per_frame.append(sse)
    order = np.arange(len(data))
    np.random.default_rng(cfg.seed * 100003 + 0).shuffle(order)  # epoch 0 batch order
    losses = [np.mean([per_frame[i] for i in order[s:s + 4]]) for s in range(0, len(order), 4)]
    assert res.history[0]["loss"] == pytest.approx(np.mean(losses), rel=1e-9)
    assert "forces_rmse" in res.history[0] and "energy_rmse" in res.history[0]


# ------------------------------------------------------------------ label key names
def test_custom_label_keys(tmp_path, small_frames):
    """dft_energy/dft_forces in the file: found with energy_key/forces_key, ignored otherwise;
    the default keys still read energy/forces from the calculator."""
    frames = []
    for a in small_frames[:3]:
        b = a.copy()
        b.info["dft_energy"] = a.get_potential_energy() + 1.0
        b.arrays["dft_forces"] = a.get_forces() + 0.5
        frames.append(b)
    write_structures(tmp_path / "d.extxyz", frames)
    back = read_structures(tmp_path / "d.extxyz")
    lab = get_labels(back[0], energy_key="dft_energy", forces_key="dft_forces")
    assert lab["energy"] == pytest.approx(small_frames[0].get_potential_energy() + 1.0)
    np.testing.assert_allclose(lab["forces"], small_frames[0].get_forces() + 0.5)
    assert get_labels(back[0])["energy"] is None and get_labels(back[0])["forces"] is None
    data = GraphDataset(back, 4.0, species_map_from(back),
                        label_keys={"energy_key": "dft_energy", "forces_key": "dft_forces"})
    assert all(K.ENERGY in g and K.FORCES in g for g in data.graphs)
    assert data.subset([0]).label_keys["energy_key"] == "dft_energy"


def test_explicit_key_wins_over_energy_and_ref_energy(small_frames):
    a = small_frames[0].copy()  # no calculator
    a.info.update(energy=-1.0, REF_energy=-2.0)
    assert get_labels(a)["energy"] == -1.0
    assert get_labels(a, energy_key="REF_energy")["energy"] == -2.0
    del a.info["energy"]
    assert get_labels(a)["energy"] == -2.0  # REF_ fallback of the default key
    a.calc = SinglePointCalculator(a, energy=-3.0)
    assert get_labels(a)["energy"] == -3.0
    assert get_labels(a, energy_key="REF_energy")["energy"] == -2.0


@pytest.mark.parametrize("voigt", [False, True])
def test_virial_key_gives_stress_with_the_gap_mace_sign(small_frames, voigt):
    """virial = -stress * volume (GAP/MACE, and this package's K.VIRIAL): a virial-only structure
    gets the stress of the calculator it came from and the same graph virial."""
    a = small_frames[0]
    s = a.get_stress(voigt=False)
    vol = a.get_volume()
    b = a.copy()
    w = -s * vol
    b.info["virial"] = (np.array([w[0, 0], w[1, 1], w[2, 2], w[1, 2], w[0, 2], w[0, 1]])
                        if voigt else w.ravel())
    np.testing.assert_allclose(get_labels(b)["stress"], s, rtol=1e-12, atol=1e-15)
    b.info["dft_virial"] = 2 * b.info.pop("virial")
    assert get_labels(b)["stress"] is None
    np.testing.assert_allclose(get_labels(b, virial_key="dft_virial")["stress"], 2 * s,
                               rtol=1e-12, atol=1e-15)
    sm = species_map_from([a])
    ga = GraphDataset([a], 4.0, sm).graphs[0]
    gb = GraphDataset([b], 4.0, sm, label_keys={"virial_key": "dft_virial"}).graphs[0]
    torch.testing.assert_close(gb[K.VIRIAL], 2 * ga[K.VIRIAL])
    # an explicitly requested virial wins over a (default-key) stress of the calculator
    c = a.copy()
    c.calc = SinglePointCalculator(c, stress=a.get_stress())
    c.info["dft_virial"] = (-3 * s * vol).ravel()
    np.testing.assert_allclose(get_labels(c, virial_key="dft_virial")["stress"], 3 * s, rtol=1e-12)
    np.testing.assert_allclose(get_labels(c)["stress"], s, rtol=1e-12)


def test_unlabelled_data_is_refused_naming_the_keys(tmp_path, small_frames):
    """dft_* keys with the default key names: a clear error before training that names the keys
    in the file (not `'float' object has no attribute 'backward'`); with the key names it trains."""
    from ubmd.data import label_keys_from
    from ubmd.training import train_from_config

    frames = []
    for a in small_frames[:4]:
        b = a.copy()
        b.info["dft_energy"] = a.get_potential_energy()
        b.arrays["dft_forces"] = a.get_forces()
        frames.append(b)
    cfg = from_dict(TrainRunConfig, {
        "model": dataclasses.asdict(MODEL), "output": str(tmp_path / "run"),
        "training": {"max_epochs": 1, "batch_size": 2, "progress": False},
        "uncertainty": {"kind": "none"}, "data": {"valid_fraction": 0.25}})
    with pytest.raises(ValueError, match="dft_energy.*dft_forces|dft_forces.*dft_energy"):
        train_from_config(cfg, frames)
    assert not (tmp_path / "run" / "members.pt").exists()
    data = GraphDataset(frames, 4.0, species_map_from(frames))
    with pytest.raises(ValueError, match="no energy or forces label"):
        train_model(data, data, MODEL, TrainingConfig(max_epochs=1, progress=False))
    keys = {"energy_key": "dft_energy", "forces_key": "dft_forces"}
    summary = train_from_config(cfg, frames, label_keys=keys)
    assert summary["errors_train"]["forces_rmse"] > 0
    # the config fields, once DataConfig has them, are picked up
    assert label_keys_from(types.SimpleNamespace(**keys))["forces_key"] == "dft_forces"
    assert label_keys_from(cfg.data)["energy_key"] == "energy"


# ------------------------------------------------------------------ validation split / fit_head
def test_small_validation_fraction_keeps_one_frame():
    assert len(split_indices(3, 0.1).valid) == 1  # round(0.3) = 0 -> 1
    assert len(split_indices(10, 0.25).valid) == 2  # unchanged where rounding gives >= 1
    assert len(split_indices(1, 0.2).valid) == 0 and len(split_indices(1, 0.2).train) == 1
    assert len(split_indices(5, 0.0).valid) == 0
    assert len(split_indices(2, 0.1, 1).valid) == 0  # would leave no training structure


@pytest.mark.parametrize("n_frames,fraction", [(1, 0.2), (4, 0.0)])
def test_no_validation_frame_for_calibration_fails_before_training(tmp_path, small_frames,
                                                                   n_frames, fraction):
    from ubmd.training import train_from_config

    cfg = from_dict(TrainRunConfig, {
        "model": dataclasses.asdict(MODEL), "output": str(tmp_path / "run"),
        "training": {"max_epochs": 1, "batch_size": 2, "progress": False},
        "uncertainty": {"kind": "posterior"}, "data": {"valid_fraction": fraction}})
    with pytest.raises(ValueError, match="valid_fraction"):
        train_from_config(cfg, small_frames[:n_frames])
    assert not (tmp_path / "run" / "members.pt").exists()  # refused before training


def test_tiny_data_set_calibrates_on_one_validation_frame(tmp_path, small_frames):
    """3 frames, valid_fraction 0.1 (round(0.3) = 0): one validation frame, calibrated."""
    from ubmd.training import train_from_config

    cfg = from_dict(TrainRunConfig, {
        "model": dataclasses.asdict(MODEL), "output": str(tmp_path / "run"),
        "training": {"max_epochs": 1, "batch_size": 2, "progress": False},
        "uncertainty": {"kind": "posterior"}, "data": {"valid_fraction": 0.1}})
    summary = train_from_config(cfg, small_frames[:3])
    assert summary["n_valid"] == 1 and summary["calibration"]["total"] > 0


def test_fit_head_rejects_unknown_kind(small_frames):
    from ubmd.uncertainty.features import FeatureModel
    from ubmd.uncertainty.fit import fit_head

    data = GraphDataset(small_frames[:2], 4.0, species_map_from(small_frames))
    fm = FeatureModel([new_model(data.species_map, MODEL, 0, torch.float64)], "last_layer")
    with pytest.raises(ValueError, match="unknown uncertainty kind 'posterior_typo'"):
        fit_head(fm, data, UncertaintyConfig(kind="posterior_typo"))


# ------------------------------------------------------------------ large absolute energies
OFFSETS = {29: -1.0e6, 13: -1.3e6}  # eV per atom: cells of about -1e7 eV (float32 ulp 1 eV)


def test_float32_training_with_large_absolute_energies(small_frames):
    """float32 training on energies offset by -1e6 eV/atom reaches the errors of training without
    the offset (labels made relative in float64), and the float64 model predicts the absolute
    energies (the float64 shift restored exactly)."""
    plain = _relabel(small_frames)
    big = _relabel(small_frames, offsets=OFFSETS)
    cfg = TrainingConfig(max_epochs=6, batch_size=3, lr=1e-2, dtype="float32", progress=False)
    runs = []
    for frames in (plain, big):
        data = GraphDataset(frames, 4.0, species_map_from(frames))
        tr, va = data.subset(range(7)), data.subset(range(7, 10))
        res = train_model(tr, va, MODEL, cfg)
        runs.append((res, va))
    (rp, vp), (rb, vb) = runs
    for hp, hb in zip(rp.history, rb.history):
        assert hb["energy_mae"] == pytest.approx(hp["energy_mae"], rel=1e-2, abs=1e-5)
        assert hb["forces_mae"] == pytest.approx(hp["forces_mae"], rel=1e-2)
    assert rb.species_shift.dtype == torch.float64
    # the float32 model holds the shift as float32: absolute energies within float32 rounding
    b = next(vb.batches(3))
    e32 = predict(rb.model, {k: (v.float() if torch.is_floating_point(v) else v)
                             for k, v in b.items()}, forces=False, virial=False)[K.ENERGY]
    ep = evaluate_errors(rp.float64_model(), vp)  # (converts the models in place)
    eb = evaluate_errors(rb.float64_model(), vb)
    assert eb["energy_mae"] == pytest.approx(ep["energy_mae"], rel=1e-2, abs=1e-5)
    e64 = predict(rb.model, b, forces=False, virial=False)[K.ENERGY]
    assert e64.dtype == torch.float64 and float(e64.abs().min()) > 4e6
    assert torch.allclose(e32.double(), e64, rtol=1e-6)


@pytest.mark.parametrize("export_dtype", ["float64", "float32"])
def test_exported_model_energies_with_large_offsets(tmp_path, small_frames, export_dtype):
    """The workflow (float32 training) exports a model whose absolute energies are those of the
    no-offset model plus the offsets: to 1e-6 eV in float64, to float32 rounding in float32."""
    from ubmd.calculator import UBMDCalculator
    from ubmd.training import train_from_config

    energies = []
    for name, frames in (("plain", _relabel(small_frames)),
                         ("big", _relabel(small_frames, offsets=OFFSETS))):
        cfg = from_dict(TrainRunConfig, {
            "model": dataclasses.asdict(MODEL), "output": str(tmp_path / name),
            "training": {"max_epochs": 3, "batch_size": 3, "progress": False, "dtype": "float32"},
            "uncertainty": {"kind": "none"}, "data": {"valid_fraction": 0.3},
            "export_dtype": export_dtype})
        summary = train_from_config(cfg, frames)
        calc = UBMDCalculator(summary["model_file"])
        a = frames[-1].copy()
        a.calc = calc
        energies.append((a.get_potential_energy(), frames[-1].get_potential_energy(), summary))
    (ep, lp, sp), (eb, lb, sb) = energies
    offset = lb - lp
    assert offset < -4e6
    assert sb["errors_valid"]["energy_mae"] == pytest.approx(sp["errors_valid"]["energy_mae"],
                                                             rel=1e-2, abs=1e-6)
    tol = 1e-6 if export_dtype == "float64" else 4e-7 * abs(lb)
    assert abs(eb - (ep + offset)) < tol, (eb, ep, offset)


def test_label_keys_from_the_config_and_in_ubmd_evaluate(tmp_path, small_frames):
    """data.energy_key/forces_key in a train config reach training; `ubmd evaluate` takes the
    same names as options, and without them refuses the file naming its keys."""
    import json

    from ubmd.cli.evaluate import main as evaluate_main
    from ubmd.config import load_train_config as load_config
    from ubmd.training import train_from_config

    frames = []
    for a in small_frames[:6]:
        b = a.copy()
        b.calc = None
        b.info["dft_energy"] = a.get_potential_energy()
        b.arrays["dft_forces"] = a.get_forces()
        frames.append(b)
    write_structures(tmp_path / "d.extxyz", frames)
    (tmp_path / "c.yaml").write_text(
        f"data: {{train: d.extxyz, valid_fraction: 0.34, energy_key: dft_energy, "
        f"forces_key: dft_forces}}\nmodel: {json.dumps(dataclasses.asdict(MODEL))}\n"
        "training: {max_epochs: 2, batch_size: 2, progress: false}\n"
        "uncertainty: {kind: none}\noutput: run\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.data.energy_key == "dft_energy"
    summary = train_from_config(cfg)
    assert summary["errors_train"]["forces_rmse"] > 0
    model = tmp_path / "run" / "model.pt"
    assert evaluate_main([str(model), str(tmp_path / "d.extxyz")]) == 2   # no labels found
    assert evaluate_main([str(model), str(tmp_path / "d.extxyz"), "--energy-key", "dft_energy",
                          "--forces-key", "dft_forces", "-o", str(tmp_path / "ev")]) == 0
    res = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert res["forces_rmse"] > 0 and res["energy_rmse"] >= 0


def test_descriptor_statistics_spread_over_the_data_set(small_frames):
    """fit_statistics with fewer structures than the data set takes them evenly spread (first
    and last for 2), not the first ones: a file ordered by composition is represented."""
    data = GraphDataset(small_frames, 4.0, species_map_from(small_frames))
    n = len(data)

    def mean_after(d, k):
        m = new_model(d.species_map, MODEL, 0, torch.float64)
        fit_statistics(m, d, max_structures=k)
        return m.desc_mean.clone()

    spread = mean_after(data, 2)
    assert torch.allclose(spread, mean_after(data.subset([0, n - 1]), 2))
    assert not torch.allclose(spread, mean_after(data.subset([0, 1]), 2))
