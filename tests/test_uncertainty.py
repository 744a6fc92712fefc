"""Uncertainty, features and bias against independent references (python reference path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from conftest import random_model, small_molecule
from ubmd.calculator import UBMDCalculator
from ubmd.model_file.export import ExportedModel
from ubmd.uncertainty.features import FeatureModel
from ubmd.neighbours import neighbour_list
from ubmd.uncertainty.heads import UncertaintyHead, feature_scale, posterior_transform


def graph(atoms, cutoff):
    i, j, s = neighbour_list(atoms.positions, np.asarray(atoms.cell), atoms.pbc, cutoff)
    ev = torch.tensor(atoms.positions[j] - atoms.positions[i] + s @ np.asarray(atoms.cell))
    return ev, torch.tensor(np.stack([i, j])), i, j, s


def species_of(atoms, zs):
    m = {z: k for k, z in enumerate(zs)}
    return torch.tensor([m[int(z)] for z in atoms.numbers])


def test_posterior_equals_explicit_gp():
    g = torch.Generator().manual_seed(0)
    phi_train = torch.randn(30, 6, generator=g, dtype=torch.float64)
    phi_test = torch.randn(5, 6, generator=g, dtype=torch.float64) * 2
    a = feature_scale(phi_train)
    head = UncertaintyHead("posterior", 6, a, a, transform=posterior_transform(phi_train, a),
                           atomic_transform=posterior_transform(phi_train, a))
    u = head.raw_total(phi_test, torch.ones(5, dtype=torch.float64))
    s2 = 1e-4
    kxx = a * a * (phi_test * phi_test).sum(-1)
    kx = a * a * phi_test @ phi_train.T
    kk = a * a * phi_train @ phi_train.T + s2 * torch.eye(30, dtype=torch.float64)
    var = kxx - (kx * torch.linalg.solve(kk, kx.T).T).sum(-1)
    assert torch.allclose(u ** 2, var, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", ["posterior", "distance", "ensemble"])
def test_total_uncertainty_gradient_matches_autograd(kind):
    g = torch.Generator().manual_seed(1)
    k = 2 if kind == "ensemble" else 5
    phi_train = torch.randn(20, k, generator=g, dtype=torch.float64)
    a = feature_scale(phi_train)
    head = UncertaintyHead(kind, k, a, a, transform=posterior_transform(phi_train, a),
                           train_features=phi_train * a, calib_total=1.7)
    phi_sum = torch.randn(k, generator=g, dtype=torch.float64) * 3
    n = 7.0
    u, v = head.total_uncertainty(phi_sum, n)
    x = phi_sum.clone().requires_grad_(True)
    u_ref = 1.7 * head.raw_total(head.structure_phi(x, n).unsqueeze(0),
                                 torch.tensor([n], dtype=torch.float64))[0]
    (v_ref,) = torch.autograd.grad(u_ref, x)
    assert torch.allclose(u, u_ref.detach(), rtol=1e-12)
    assert torch.allclose(v, v_ref, rtol=1e-9, atol=1e-14)


def test_sketch_equals_projection_of_explicit_gradients():
    torch.manual_seed(0)
    m = random_model(zs=(1, 6, 8), cutoff=4.0, seed=4, hidden=(5, 4))
    fm = FeatureModel([m], "sketch", n_sketch=7, seed=3)
    fl = FeatureModel([m], "last_layer")
    atoms = small_molecule()
    ev, ei, *_ = graph(atoms, 4.0)
    sp = species_of(atoms, (1, 6, 8))
    n = len(atoms)
    _, phi = fm.atomic(ev, ei, sp, n, True)
    _, phi_ll = fl.atomic(ev, ei, sp, n, True)
    e_at = m(ev, ei, sp, n)
    for atom in range(n):
        ref = torch.zeros(7, dtype=torch.float64)
        for li, layer in enumerate(m.layers):
            gw, gb = torch.autograd.grad(e_at[atom], [layer.weight, layer.bias], retain_graph=True)
            # parameter gradient in the extended-input basis: [dE/dW (raw), dE/db (raw)]
            grad = torch.cat([gw, gb.unsqueeze(-1)], dim=1)  # [d_out, d_in + 1]
            sk = fm.sketches[li]
            ref += torch.einsum("ba,ak,bk->k", grad, sk.u, sk.v)
            if li == len(m.layers) - 1:
                assert torch.allclose(phi_ll[atom], grad.reshape(-1), rtol=1e-10, atol=1e-14)
        assert torch.allclose(phi[atom], ref / np.sqrt(7), rtol=1e-10, atol=1e-13)


def _biased_calc(model_zs=(1, 6, 8), cutoff=4.0, tau_f=0.3, tau_s=0.0, weights=None, kind="posterior"):
    m = random_model(zs=model_zs, cutoff=cutoff, seed=6)
    fm = FeatureModel([m], "sketch" if kind == "posterior" else "last_layer", n_sketch=16, seed=1)
    g = torch.Generator().manual_seed(2)
    phi_train = torch.randn(40, fm.dim, generator=g, dtype=torch.float64) * 0.1
    a = feature_scale(phi_train)
    head = UncertaintyHead(kind, fm.dim, a, a, transform=posterior_transform(phi_train, a),
                           atomic_transform=posterior_transform(phi_train, a),
                           train_features=phi_train * a, train_atomic_features=phi_train * a,
                           calib_total=2.0, calib_atomic=3.0)
    em = ExportedModel(fm, head)
    return em, UBMDCalculator(em, tau_forces=tau_f, tau_stress=tau_s, window=1, weights=weights)


@pytest.mark.parametrize("kind", ["posterior", "distance"])
def test_bias_forces_are_scaled_gradient_of_u(kind):
    em, calc = _biased_calc(weights={"H": 0.0}, kind=kind)
    atoms = small_molecule()
    atoms.calc = calc
    atoms.get_forces()
    r = dict(calc.results)
    s = r["bias_scale_forces"]
    assert s > 0
    plain = UBMDCalculator(em)
    fd = np.zeros((len(atoms), 3))
    h = 1e-5
    for a in range(len(atoms)):
        for d in range(3):
            us = []
            for sign in (1, -1):
                b = atoms.copy()
                b.positions[a, d] += sign * h
                b.calc = plain
                b.get_potential_energy()
                us.append(plain.results["uncertainty"])
            fd[a, d] = (us[0] - us[1]) / (2 * h)
    w = np.where(atoms.numbers == 1, 0.0, 1.0)[:, None]
    expected = 0.3 * s * w * fd  # F_b = +tau s w du/dR  (E_b = E - tau u)
    assert np.abs(expected).max() > 1e-8
    assert np.allclose(r["bias_forces"], expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    assert np.all(r["bias_forces"][atoms.numbers == 1] == 0)
    assert np.allclose(r["forces"], r["unbiased_forces"] + r["bias_forces"])
    # reported energy stays unbiased; bias energy separate
    assert abs(r["bias_energy"] + 0.3 * s * r["uncertainty"]) < 1e-12


def test_extra_results_through_get_property_and_weights_of_absent_elements():
    """get_property serves the documented extra keys (uncertainty, bias terms, virial) as ASE
    serves energy; a calculator without uncertainty refuses them the ASE way; bias weights of an
    element the model lacks are an error naming the model's elements."""
    from ase.calculators.calculator import PropertyNotImplementedError

    em, calc = _biased_calc(model_zs=(13, 29), tau_f=0.3, tau_s=0.2)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.set_chemical_symbols(["Cu", "Al", "Cu", "Cu"])
    atoms.rattle(0.05, seed=2)
    u = calc.get_property("uncertainty", atoms)
    assert u == calc.results["uncertainty"] and u > 0
    for key in ("atomic_uncertainty", "bias_energy", "bias_forces", "bias_stress",
                "unbiased_forces", "unbiased_stress", "bias_scale_forces", "bias_scale_stress"):
        assert np.array_equal(calc.get_property(key, atoms), calc.results[key]), key
    virial = calc.get_property("virial", atoms)
    assert np.allclose(calc.results["unbiased_stress"],
                       -np.asarray(virial)[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
                       / atoms.get_volume())
    # the standard path is unchanged: energies and forces through Atoms, a fresh atom position
    # recomputes the extra keys too
    atoms.calc = calc
    assert atoms.get_forces() == pytest.approx(calc.results["forces"])
    moved = atoms.copy()
    moved.positions[0, 0] += 0.05
    assert calc.get_property("uncertainty", moved) != u
    plain = UBMDCalculator(em, uncertainty="none")
    assert "uncertainty" not in plain.implemented_properties
    with pytest.raises(PropertyNotImplementedError):
        plain.get_property("uncertainty", atoms)
    with pytest.raises(ValueError, match=r"element S is not in the model \(model elements: "
                                         r"Al, Cu\)"):
        UBMDCalculator(em, weights={"S": 0.0})


def test_bias_stress_is_strain_derivative_of_u():
    em, calc = _biased_calc(model_zs=(13, 29), tau_f=0.0, tau_s=0.5)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.set_chemical_symbols(["Cu", "Al", "Cu", "Cu"])
    atoms.rattle(0.1, seed=1)
    atoms.calc = calc
    atoms.get_stress()
    r = dict(calc.results)
    s = r["bias_scale_stress"]
    assert s > 0
    plain = UBMDCalculator(em)
    vol = atoms.get_volume()
    cell0 = atoms.get_cell().copy()
    fd = np.zeros((3, 3))
    h = 1e-6
    for i in range(3):
        for j in range(3):
            us = []
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[i, j] += 0.5 * sign * h
                eps[j, i] += 0.5 * sign * h
                b = atoms.copy()
                b.set_cell(cell0 @ (np.eye(3) + eps), scale_atoms=True)
                b.calc = plain
                b.get_potential_energy()
                us.append(plain.results["uncertainty"])
            fd[i, j] = (us[0] - us[1]) / (2 * h)
    from ase.stress import full_3x3_to_voigt_6_stress

    expected = full_3x3_to_voigt_6_stress(-0.5 * s * fd / vol)
    assert np.abs(expected).max() > 1e-10
    assert np.allclose(r["bias_stress"], expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert np.allclose(r["stress"], r["unbiased_stress"] + r["bias_stress"])
    assert np.allclose(r["bias_forces"], 0.0)


def test_adaptive_scale_burn_in_and_window():
    from ubmd.bias import AdaptiveScale

    sc = AdaptiveScale(window=3)
    assert sc.update(4.0, 1.0) == 0.0 and sc.update(4.0, 1.0) == 0.0
    assert abs(sc.update(4.0, 1.0) - np.sqrt(12) / (np.sqrt(3) + 1e-8)) < 1e-12
    v = sc.update(100.0, 1.0)  # oldest dropped: window = (4, 4, 100)
    assert abs(v - np.sqrt(108) / (np.sqrt(3) + 1e-8)) < 1e-12


def test_split_and_reduce_gives_unsplit_bias_forces():
    """Two 'ranks' own disjoint atom groups; Allreduce of feature sums + per-group backprop."""
    em, _ = _biased_calc()
    atoms = small_molecule()
    zs = (1, 6, 8)
    sp = species_of(atoms, zs)
    n = len(atoms)
    pos = torch.tensor(atoms.positions, requires_grad=True)
    i, j, _ = neighbour_list(atoms.positions, np.zeros((3, 3)), False, 4.0)
    # unsplit reference: u(R) and du/dR by autograd through everything
    ei = torch.tensor(np.stack([i, j]))
    _, phi = em.atomic(pos[ei[1]] - pos[ei[0]], ei, sp, n, True)
    u_ref = em.head.calib_total * em.head.raw_total(phi.sum(0, keepdim=True) / n,
                                                     torch.tensor([float(n)]))[0]
    (du_ref,) = torch.autograd.grad(u_ref, pos)
    # split: group 0 owns atoms [0, 4), group 1 owns the rest; centres local, neighbours any
    owners = [np.arange(0, 4), np.arange(4, n)]
    sums, graphs = [], []
    for own in owners:
        # local numbering: owned atoms first, then "ghosts" (all other atoms)
        order = np.concatenate([own, np.setdiff1d(np.arange(n), own)])
        inv = np.empty(n, dtype=np.int64)
        inv[order] = np.arange(n)
        mask = np.isin(i, own)
        li, lj = inv[i[mask]], inv[j[mask]]
        lei = torch.tensor(np.stack([li, lj]))
        lpos = pos[torch.tensor(order)]
        _, lphi = em.atomic(lpos[lei[1]] - lpos[lei[0]], lei, sp[torch.tensor(order)], len(own), True)
        sums.append(lphi.sum(0))
        graphs.append(lphi)
    phi_global = (sums[0] + sums[1]).detach()  # the Allreduce
    u, v = em.total_uncertainty(phi_global, float(n))
    du = torch.zeros(n, 3, dtype=torch.float64)
    for s in sums:
        (g,) = torch.autograd.grad((v * s).sum(), pos, retain_graph=True)
        du += g  # LAMMPS reverse communication sums ghost contributions
    assert abs(float(u) - float(u_ref)) < 1e-12 * float(u_ref)
    assert torch.allclose(du, du_ref, rtol=1e-10, atol=1e-14 * float(du_ref.abs().max()))
