"""The one-pass path (issue #25): the model file's atomic_state / state_gradients and the
hand-written VJPs under them (descriptor, readout, feature contractions, ZBL baseline) give what
plain autograd through ``atomic`` gives -- energies, feature sums, per-atom features, the energy
gradient and the bias gradient (of v . sum_i phi_i) w.r.t. the edge vectors, both at once --
for every feature kind, both sketch routes, ensembles of different widths, both radial
pair-mixing routes, periodic cells and ghost atoms, eager and scripted, float64 and float32; and
the closed-form first derivative trains like the double backward (same loss and parameter
gradients)."""

from __future__ import annotations

import pytest
import torch

from conftest import ethanol_edges as _graph
from conftest import random_model
from ubmd.model import GaussianMoments
from ubmd.model.repulsion import PairRepulsion
from ubmd.model_file.export import ExportedModel
from ubmd.uncertainty.features import FeatureModel
from ubmd.uncertainty.heads import UncertaintyHead

ZS = (1, 6, 8)
WIDTHS = {1: [(16, 16)], 2: [(16, 16), (24, 8)], 3: [(16, 16), (8, 24), (5, 3)]}



def _members(n_members: int, dtype=torch.float64):
    out = []
    g = torch.Generator().manual_seed(7)
    for s, w in enumerate(WIDTHS[n_members]):
        m = random_model(zs=ZS, seed=s, hidden=w)
        with torch.no_grad():  # non-trivial scales, shifts, biases, standardisation
            m.species_scale.copy_(torch.rand(3, generator=g, dtype=torch.float64) + 0.5)
            m.desc_inv_std.copy_(torch.rand(m.descriptor.dim, generator=g, dtype=torch.float64) + 0.5)
            for layer in m.layers:
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=g, dtype=torch.float64))
        out.append(m.to(dtype))
    return out


def _exported(kind: str, n_members: int, route: str = "auto", dtype=torch.float64):
    fm = FeatureModel(_members(n_members, dtype), kind, 32, seed=3).set_route(route)
    head = (UncertaintyHead("ensemble", fm.dim) if kind == "energies" else
            UncertaintyHead("posterior", fm.dim, transform=torch.eye(fm.dim, dtype=torch.float64)))
    return ExportedModel(fm, head).to(dtype)


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _reference(em, ev0, ei, sp, n, v):
    ev = ev0.clone().requires_grad_(True)
    e, phi = em.atomic(ev, ei, sp, n, True)
    g_e, = torch.autograd.grad(e.sum(), ev, retain_graph=True)
    g_u, = torch.autograd.grad((phi.sum(0) * v).sum(), ev)
    return e.detach(), phi.detach(), g_e, g_u


CASES = [("sketch", 1, "auto"), ("sketch", 2, "atoms"), ("sketch", 2, "matrix"),
         ("sketch", 3, "auto"), ("last_layer", 1, "auto"), ("last_layer", 2, "auto"),
         ("energies", 3, "auto")]


@pytest.mark.parametrize("periodic, n_centres", [(False, None), (True, None), (True, 1),
                                                 (False, 4)],
                         ids=["molecule", "periodic", "one_centre", "4_centres_ghosts"])
@pytest.mark.parametrize("kind, n_members, route", CASES,
                         ids=[f"{k}-{m}-{r}" for k, m, r in CASES])
def test_state_gradients_equal_autograd(kind, n_members, route, periodic, n_centres):
    ev, ei, sp, n = _graph(periodic, n_centres)
    em = _exported(kind, n_members, route)
    v = torch.randn(em.features.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    e_ref, phi_ref, ge_ref, gu_ref = _reference(em, ev, ei, sp, n, v)
    with torch.no_grad():
        for atomic in (True, False):
            e, phi_sum, phi, state = em.atomic_state(ev, ei, sp, n, True, atomic)
            torch.testing.assert_close(e, e_ref, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(phi_sum, phi_ref.sum(0), rtol=1e-11, atol=1e-12)
            assert phi.shape == ((n, em.features.dim) if atomic else (n, 0))
            if atomic:
                torch.testing.assert_close(phi, phi_ref, rtol=1e-11, atol=1e-12)
            g = em.state_gradients(state, v)
            assert g.shape == (2, ev.shape[0], 3)
            assert _rel(g[0], ge_ref) < 1e-11 and _rel(g[1], gu_ref) < 1e-11
        # energies only: one cotangent
        e, phi_sum, phi, state = em.atomic_state(ev, ei, sp, n, False, False)
        assert phi_sum.numel() == 0 and phi.shape == (n, 0)
        g = em.state_gradients(state, v[:0])
        assert g.shape == (1, ev.shape[0], 3) and _rel(g[0], ge_ref) < 1e-11
        with pytest.raises(RuntimeError, match="with_features"):
            em.state_gradients(state, v)


def test_scripted_and_float32():
    """The exported (TorchScript) methods give the eager numbers; float32 is close."""
    ev, ei, sp, n = _graph(True)
    em = _exported("sketch", 2)
    v = torch.randn(em.features.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    scripted = torch.jit.script(em)
    with torch.no_grad():
        out = [m.atomic_state(ev, ei, sp, n, True, True) for m in (em, scripted)]
        g = [m.state_gradients(o[3], v) for m, o in zip((em, scripted), out)]
    torch.testing.assert_close(out[1][0], out[0][0], rtol=1e-14, atol=0)
    assert _rel(g[1], g[0]) < 1e-13
    em32 = _exported("sketch", 2, dtype=torch.float32)
    with torch.no_grad():
        e32, s32, _, st32 = em32.atomic_state(ev.float(), ei, sp, n, True, False)
        g32 = em32.state_gradients(st32, v.float())
    torch.testing.assert_close(e32.double(), out[0][0], rtol=1e-4, atol=1e-4)
    assert _rel(g32.double(), g[0]) < 1e-4


@pytest.mark.parametrize("pair_gemm", [True, False], ids=["pair_gemm", "per_pair"])
@pytest.mark.parametrize("n_cot", [1, 3])
def test_descriptor_vjp_both_radial_routes(pair_gemm, n_cot):
    """GaussianMoments.backward_state against autograd for any number of cotangents, with the
    radial basis mixed through one GEMM to all pair channels or one GEMM per species pair
    (forced here: small graphs take the one-GEMM route)."""
    ev, ei, sp, n = _graph(True, 6)
    d = GaussianMoments(3, 4.0, 5, 7, pair_gemm=pair_gemm).double()
    d.pair_gemm_waste = 0
    w = torch.randn(n_cot, n, d.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x = ev.clone().requires_grad_(True)
    desc = d(x, ei, sp, n)
    refs = [torch.autograd.grad((desc * w[k]).sum(), x, retain_graph=True)[0] for k in range(n_cot)]
    with torch.no_grad():
        desc2, state = d.forward_state(ev, ei, sp, n)
        g = d.backward_state(state, w)
    torch.testing.assert_close(desc2, desc.detach(), rtol=1e-13, atol=1e-13)
    for k in range(n_cot):
        assert _rel(g[k], refs[k]) < 1e-12
    assert d.pair_groups(ei, sp)[1] == ([] if pair_gemm else
                                        torch.bincount(sp[ei[0]] * 3 + sp[ei[1]], minlength=9).tolist())


def test_repulsion_gradient_in_closed_form():
    """ZBL energies and their edge gradient without autograd, with pairs inside and across the
    switching range (and pairs beyond it, which the baseline skips exactly)."""
    rep = PairRepulsion(list(ZS)).double()
    g = torch.Generator().manual_seed(4)
    pos = torch.rand(10, 3, generator=g, dtype=torch.float64) * 1.6
    i, j = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    keep = i != j
    ei = torch.stack([i[keep], j[keep]])
    sp = torch.randint(0, 3, (10,), generator=g)
    x = (pos[ei[1]] - pos[ei[0]]).requires_grad_(True)
    e = rep(x, ei, sp, 10)
    (gref,) = torch.autograd.grad(e.sum(), x)
    e2, g2 = rep.energy_and_gradient(x.detach(), ei, sp, 10)
    torch.testing.assert_close(e2, e.detach(), rtol=1e-13, atol=0)
    assert (gref != 0).any(dim=1).sum() > 5 and _rel(g2, gref) < 1e-12


def test_closed_form_force_loss_trains_like_the_double_backward():
    """MLIP.energies_and_gradient under autograd: the force loss and its parameter gradients
    equal those of autograd.grad(..., create_graph=True) + backward (what training did)."""
    ev, ei, sp, n = _graph(True)
    m = _members(1)[0]
    target = torch.randn(ev.shape[0], 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x = ev.clone().requires_grad_(True)
    e = m(x, ei, sp, n)
    (g,) = torch.autograd.grad(e.sum(), x, create_graph=True)
    loss = (e.sum() - 1.0) ** 2 + ((g - target) ** 2).sum()
    ref = torch.autograd.grad(loss, list(m.parameters()))
    e2, g2 = m.energies_and_gradient(ev, ei, sp, n)
    loss2 = (e2.sum() - 1.0) ** 2 + ((g2 - target) ** 2).sum()
    got = torch.autograd.grad(loss2, list(m.parameters()))
    assert abs(float(loss2) - float(loss)) < 1e-12 * abs(float(loss))
    for a, b in zip(got, ref):
        assert _rel(a, b) < 1e-10
