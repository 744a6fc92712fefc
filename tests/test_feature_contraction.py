"""FeatureModel.atomic_parts / contract (the model file's atomic_parts / feature_contraction):
the feature sum, the per-atom features and the gradient of v . sum_i phi_i must equal what plain
autograd through ``atomic`` gives, for every feature kind, both sketch routes, ensembles,
periodic cells, eager and scripted, float64 and float32."""

from __future__ import annotations

import pytest
import torch

from conftest import ethanol_edges as _graph
from conftest import random_model
from ubmd.model_file.export import ExportedModel
from ubmd.uncertainty.features import SKETCH_ROUTES, FeatureModel, matrix_route_cheaper

ZS = (1, 6, 8)



def _reference(fm, ev0, ei, sp, n, v):
    ev = ev0.clone().requires_grad_(True)
    e, phi = fm.atomic(ev, ei, sp, n, True)
    (g,) = torch.autograd.grad((phi.sum(0) * v).sum(), ev)
    return e.detach(), phi.detach(), g


WIDTHS = {1: [(16, 16)], 2: [(16, 16), (24, 8)], 3: [(16, 16), (8, 24), (5, 3)]}


@pytest.mark.parametrize("periodic, n_centres", [(False, None), (True, None), (True, 1),
                                                 (False, 4)],
                         ids=["molecule", "periodic", "one_centre", "4_centres_ghosts"])
@pytest.mark.parametrize("kind, members", [("sketch", 1), ("sketch", 2), ("sketch", 3),
                                           ("last_layer", 2), ("energies", 3)])
def test_contraction_equals_autograd_of_feature_sum(kind, members, periodic, n_centres):
    """Members of different widths; all atoms as centres, one centre (a C atom: H and O only
    among its neighbours), or 4 centres with the other atoms as neighbours only."""
    ev0, ei, sp, n = _graph(periodic, n_centres)
    fm = FeatureModel([random_model(zs=ZS, seed=s, hidden=w)
                       for s, w in enumerate(WIDTHS[members])], kind, 32, seed=3)
    v = torch.randn(fm.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    e_ref, phi_ref, g_ref = _reference(fm, ev0, ei, sp, n, v)
    assert g_ref.abs().max() > 1e-3
    for route in SKETCH_ROUTES:
        fm.set_route(route)
        scripted = torch.jit.script(ExportedModel(fm, None))
        for parts_fn, contract_fn in ((fm.atomic_parts, fm.contract),
                                      (scripted.atomic_parts, scripted.feature_contraction)):
            for atomic in (False, True):
                ev = ev0.clone().requires_grad_(True)
                e, phi_sum, phi_atoms, parts = parts_fn(ev, ei, sp, n, atomic)
                (g,) = torch.autograd.grad(contract_fn(parts, v), ev)
                torch.testing.assert_close(e.detach(), e_ref, rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(phi_sum, phi_ref.sum(0), rtol=1e-10, atol=1e-12)
                torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-12)
                assert not phi_sum.requires_grad and not phi_atoms.requires_grad
                if atomic:
                    torch.testing.assert_close(phi_atoms, phi_ref, rtol=1e-10, atol=1e-12)
                else:
                    assert phi_atoms.shape == (n, 0)


def test_contraction_float32():
    ev0, ei, sp, n = _graph(True)
    fm = FeatureModel([random_model(zs=ZS, seed=0)], "sketch", 32, seed=3)
    v = torch.randn(fm.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _, _, g_ref = _reference(fm, ev0, ei, sp, n, v)
    fm32 = fm.float().set_route("matrix")
    ev = ev0.float().requires_grad_(True)
    _, _, _, parts = fm32.atomic_parts(ev, ei, sp, n, False)
    (g,) = torch.autograd.grad(fm32.contract(parts, v.float()), ev)
    torch.testing.assert_close(g.double(), g_ref, rtol=1e-4, atol=1e-5)


def test_route_choice_counts_multiply_adds():
    # per atom K (d_in + d_out) against d_in d_out, plus d_in K d_out once
    assert matrix_route_cheaper(1, 129, 1, 512)            # output layer: always
    assert not matrix_route_cheaper(22, 525, 128, 512)      # alanine-sized, first layer
    assert matrix_route_cheaper(1000, 525, 128, 512)
    n_star = next(n for n in range(1, 10_000) if matrix_route_cheaper(n, 525, 128, 512))
    assert 100 < n_star < 200


def test_members_must_have_the_same_depth_and_routes_are_checked():
    with pytest.raises(ValueError, match="same number of layers"):
        FeatureModel([random_model(zs=ZS, hidden=(16, 16)), random_model(zs=ZS, hidden=(16,))],
                     "sketch", 8)
    fm = FeatureModel([random_model(zs=ZS)], "sketch", 8)
    with pytest.raises(ValueError, match="unknown sketch route"):
        fm.set_route("matirx")
