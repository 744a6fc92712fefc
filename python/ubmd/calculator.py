"""ASE calculator for a ubmd model (model file or in-memory), with optional uncertainty bias.

Results: ``energy``/``free_energy`` (unbiased, eV), ``energies`` (per atom, eV), ``forces`` (eV/Å,
bias included when on), ``stress`` (Voigt, eV/Å^3, bias stress included when on; periodic cells
only), and extra keys (see :mod:`ubmd.keys`): ``uncertainty`` (calibrated total u, eV/atom),
``atomic_uncertainty`` (calibrated per-atom u, eV/Å), ``bias_energy`` (-tau_F s_F u, eV, NOT part
of ``energy``), ``bias_forces``, ``bias_stress``, ``unbiased_forces``, ``unbiased_stress``,
``bias_scale_forces``, ``bias_scale_stress``, and ``virial`` (3x3 unbiased virial
W = -dE/d(strain) = -V sigma, eV; periodic cells only). All of them are in
``implemented_properties``, so ``calc.get_property("uncertainty", atoms)`` works as for
``energy``; the uncertainty keys only when the model has an uncertainty and ``uncertainty`` is
not ``"none"``.

This is the Python reference implementation the LAMMPS pair style is tested against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers as symbol_to_z
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from . import keys as K
from .bias import AdaptiveScale
from .neighbours import neighbour_list
from .prediction import forces_from_edge_grad, model_dtype, virial_from_edge_grad


class UBMDCalculator(Calculator):
    """Model energies/forces/stress + uncertainties, optionally biased: E_b = E - tau u.

    Parameters
    ----------
    model: path to a model file written by ``ubmd export``, or an ``ExportedModel``.
    tau_forces: tau_F (dimensionless; bias force ~ tau_F x RMS true force once scaled).
    tau_stress: tau_sigma (dimensionless), bias stress for NPT.
    window: W, number of evaluations in the adaptive-scale window (s = 0 before W).
    weights: per-element weights of the bias force, e.g. ``{"H": 0.0}`` (others 1); every element
        named must be one of the model's (ValueError otherwise).
    uncertainty: ``"total"`` (compute u, u_i; bias uses u), ``"atomic"`` (u_i only, no bias),
        ``"none"`` (plain MLIP).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress",
                              K.UNBIASED_FORCES, K.BIAS_FORCES, K.UNBIASED_STRESS, K.BIAS_STRESS,
                              K.VIRIAL]
    #: results that need an uncertainty (added to an instance's implemented_properties)
    uncertainty_properties = [K.UNCERTAINTY, K.ATOMIC_UNCERTAINTY, K.BIAS_ENERGY,
                              K.SCALE_FORCES, K.SCALE_STRESS]
    default_parameters = {"tau_forces": 0.0, "tau_stress": 0.0, "window": 100, "weights": None,
                          "uncertainty": "total"}

    def __init__(self, model, tau_forces: float = 0.0, tau_stress: float = 0.0, window: int = 100,
                 weights: dict | None = None, uncertainty: str = "total", device: str = "cpu",
                 **kwargs):
        super().__init__(**kwargs)
        self.implemented_properties = list(type(self).implemented_properties)
        if uncertainty not in ("total", "atomic", "none"):
            raise ValueError(f"uncertainty must be total, atomic or none, got {uncertainty!r}")
        if isinstance(model, (str, Path)):
            from .model_file.load import load_model_file

            model, meta = load_model_file(model, device)
            zs = [int(z) for z in meta[K.META_ATOMIC_NUMBERS]]
            self.has_uncertainty = meta[K.META_UNCERTAINTY] != "none"
            self.cutoff = float(meta[K.META_CUTOFF])
        else:
            zs = list(model.features.members[0].atomic_numbers)
            self.has_uncertainty = bool(model.has_uncertainty)
            self.cutoff = float(model.cutoff)
        self.model = model
        self.dtype = model_dtype(model)
        self.species_map = {z: k for k, z in enumerate(zs)}
        self.uncertainty = uncertainty if self.has_uncertainty else "none"
        if self.uncertainty != "none":  # a new list: += would extend the class attribute
            self.implemented_properties = (list(type(self).implemented_properties)
                                           + self.uncertainty_properties)
        if (tau_forces or tau_stress) and self.uncertainty != "total":
            raise ValueError("a bias needs uncertainty='total' and a model with uncertainty")
        self.tau_forces, self.tau_stress = float(tau_forces), float(tau_stress)
        self.scale_f = AdaptiveScale(window)
        self.scale_s = AdaptiveScale(window)
        self.set_weights(weights)

    @property
    def elements(self) -> list[str]:
        """The model's elements (chemical symbols, in the model's order)."""
        return [chemical_symbols[z] for z in self.species_map]

    def set_weights(self, weights: dict | None) -> None:
        """Per-element bias weights, e.g. ``{"H": 0.0}`` (elements not named: 1); each element
        must be one of :attr:`elements`."""
        out = {}
        for el, w in (weights or {}).items():
            if el not in symbol_to_z:
                raise ValueError(f"unknown element {el!r} in bias weights")
            if symbol_to_z[el] not in self.species_map:
                raise ValueError(f"bias weights: element {el} is not in the model (model "
                                 f"elements: {', '.join(self.elements)})")
            out[symbol_to_z[el]] = float(w)
        self.weights = out

    def reset_bias(self) -> None:
        """Restart the adaptive-scale windows (a new trajectory starts unbiased)."""
        self.scale_f.reset()
        self.scale_s.reset()

    def neighbours(self, positions: np.ndarray, cell: np.ndarray, pbc) -> tuple:
        """The edges (i, j, integer cell shifts S: r_ij = r_j - r_i + S @ cell) within the model's
        cutoff (:func:`ubmd.neighbours.neighbour_list`); a subclass may time it or
        use another list."""
        return neighbour_list(positions, cell, pbc, self.cutoff)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        numbers = atoms.get_atomic_numbers()
        unknown = sorted({int(z) for z in numbers} - set(self.species_map))
        if unknown:
            missing = [chemical_symbols[z] for z in unknown]
            raise ValueError(f"elements {missing} are not in the model (model elements: "
                             f"{', '.join(self.elements)})")
        pos = atoms.get_positions()
        cell = np.asarray(atoms.get_cell())
        pbc = atoms.get_pbc()
        i, j, s = self.neighbours(pos, cell, pbc)
        n = len(atoms)
        dt = self.dtype
        ev = torch.tensor(pos[j] - pos[i] + s @ cell, dtype=dt).requires_grad_(True)
        ei = torch.tensor(np.stack([i, j]), dtype=torch.long)
        species = torch.tensor([self.species_map[int(z)] for z in numbers], dtype=torch.long)
        want_u = self.uncertainty != "none"
        bias_on = self.uncertainty == "total" and (self.tau_forces != 0 or self.tau_stress != 0)
        e_at, phi = self.model.atomic(ev, ei, species, n, want_u)
        energy = e_at.sum()
        (g_e,) = torch.autograd.grad(energy, ev, retain_graph=bias_on)
        forces = forces_from_edge_grad(g_e, ei, n).detach().double().numpy()
        batch0 = torch.zeros(ev.shape[0], dtype=torch.long)
        virial = virial_from_edge_grad(g_e, ev, batch0, 1)[0].detach().double().numpy()
        periodic = bool(pbc.all())
        vol = abs(np.linalg.det(cell)) if periodic else 0.0
        e_val = float(energy.detach())
        r = {"energy": e_val, "free_energy": e_val,
             "energies": e_at.detach().double().numpy()}
        bias_f = np.zeros((n, 3))
        bias_w = np.zeros((3, 3))
        if want_u:
            phi_sum = phi.sum(0)
            u, v = self.model.total_uncertainty(phi_sum.detach(), float(n))
            r[K.UNCERTAINTY] = float(u)
            r[K.ATOMIC_UNCERTAINTY] = self.model.atomic_uncertainty(phi.detach()).double().numpy()
            if bias_on:
                (g_u,) = torch.autograd.grad((v.detach() * phi_sum).sum(), ev)
                du_dr = -forces_from_edge_grad(g_u, ei, n).detach().double().numpy()
                du_deps = -virial_from_edge_grad(g_u, ev, batch0, 1)[0].detach().double().numpy()
                s_f = self.scale_f.update(float((forces ** 2).sum()), float((du_dr ** 2).sum()))
                s_s = self.scale_s.update(float((virial ** 2).sum()), float((du_deps ** 2).sum()))
                w = np.array([self.weights.get(int(z), 1.0) for z in numbers])[:, None]
                bias_f = self.tau_forces * s_f * w * du_dr
                bias_w = self.tau_stress * s_s * du_deps if periodic else bias_w
                r[K.SCALE_FORCES], r[K.SCALE_STRESS] = s_f, s_s
                r[K.BIAS_ENERGY] = -self.tau_forces * s_f * float(u)
            else:
                r[K.SCALE_FORCES] = r[K.SCALE_STRESS] = 0.0
                r[K.BIAS_ENERGY] = 0.0
        r[K.UNBIASED_FORCES] = forces
        r[K.BIAS_FORCES] = bias_f
        r["forces"] = forces + bias_f
        if periodic:
            stress = -virial / vol
            r[K.UNBIASED_STRESS] = full_3x3_to_voigt_6_stress(stress)
            r[K.BIAS_STRESS] = full_3x3_to_voigt_6_stress(-bias_w / vol)
            r["stress"] = full_3x3_to_voigt_6_stress(stress - bias_w / vol)
            r[K.VIRIAL] = virial
        self.results.update(r)
