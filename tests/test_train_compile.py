"""training.compile: the compiled training step gives the eager loss and gradients, and trains."""

from __future__ import annotations

import dataclasses

import pytest

pytestmark = pytest.mark.slow  # torch.compile: 30-80 s of compilation on 2 cores
import torch

from ubmd import keys as K
from ubmd.config import ModelConfig, TrainingConfig
from ubmd.data import GraphDataset, species_map_from
from ubmd.model import new_model
from ubmd.training.loss import StepLoss
from ubmd.training.trainer import fit_statistics, train_model




@pytest.fixture(scope="module")
def cu_data(cu_frames):
    sm = species_map_from(cu_frames)
    ds = GraphDataset(cu_frames, 4.0, sm)
    return ds


@pytest.mark.parametrize("pair_gemm", [True, False], ids=["pair_gemm", "pair_weights"])
def test_compiled_step_matches_eager_loss_and_gradients(cu_data, pair_gemm):
    """float64, periodic cells with virial labels, one structure's virial masked out: the
    compiled loss (forces and virial from the closed-form edge gradient) and every parameter gradient equal
    the eager path's (predict + autograd.grad with create_graph). Both radial pair-mixing paths
    of the descriptor (Cu/Al has 2 species: the per-edge pair weights are forced)."""
    torch.manual_seed(0)
    mc = ModelConfig(cutoff=4.0, n_radial=4, n_basis=6, hidden=[16, 16])
    model = new_model(cu_data.species_map, mc, 0, torch.float64)
    model.descriptor.pair_gemm = pair_gemm
    fit_statistics(model, cu_data)
    cfg = TrainingConfig(weight_energy=3.0, weight_forces=4.0, weight_virial=0.5, compile=False)
    batches = list(cu_data.batches(5))
    assert len(batches) >= 2 and batches[-1][K.N_ATOMS].shape[0] != batches[0][K.N_ATOMS].shape[0]
    for b in batches:
        b["virial_mask"][0] = False  # a structure without a stress label
    eager = StepLoss(model, cfg, has_virial=True)
    comp = StepLoss(model, dataclasses.replace(cfg, compile=True), has_virial=True)
    for b in batches[:2] + batches[-1:]:  # two shapes: the dynamic-shape graph is reused
        grads = []
        for step in (eager, comp):
            model.zero_grad(set_to_none=True)
            loss = step(b)
            loss.backward()
            grads.append((float(loss), [p.grad.clone() for p in model.parameters()]))
        assert comp.compiled is not None, "compilation fell back to eager"
        (l_e, g_e), (l_c, g_c) = grads
        assert l_c == pytest.approx(l_e, rel=1e-10)
        for ge, gc in zip(g_e, g_c):
            torch.testing.assert_close(gc, ge, rtol=1e-8, atol=1e-12)


def test_compiled_training_lowers_validation_error(cu_data):
    n = len(cu_data)
    train, valid = cu_data.subset(range(n - 6)), cu_data.subset(range(n - 6, n))
    mc = ModelConfig(cutoff=4.0, n_radial=4, n_basis=6, hidden=[16, 16])
    cfg = TrainingConfig(max_epochs=12, batch_size=6, lr=5e-3, dtype="float32", progress=False,
                         compile=True, patience=50)
    res = train_model(train, valid, mc, cfg)
    hist = res.history
    assert hist[-1]["forces_rmse"] < 0.8 * hist[0]["forces_rmse"]
