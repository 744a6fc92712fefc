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

ASE conventions: the bias settings are ASE parameters (``calc.parameters``, changed with
``calc.set(...)``, listed by ``calc.todict()`` with the model file), ``calc.reset()`` starts a new
trajectory, and the calculator pickles (a model file is loaded again on unpickling, so a pickled
calculator is small and travels to worker processes). An ASE optimiser refuses to run with a
bias on (it would minimise E - tau u, not E): set ``tau_forces`` and ``tau_stress`` to 0 first,
as ``pair_style ubmd`` refuses ``minimize`` with a bias.

This is the Python reference implementation the LAMMPS pair style is tested against.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers as symbol_to_z
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from . import keys as K
from .bias import Bias, GlobalNorms
from .config import check_device
from .neighbours import neighbour_list
from .prediction import forces_from_edge_grad, model_dtype, virial_from_edge_grad


_MODE_ALIASES = {K.UNCERTAINTY_MODE_TOTAL: K.UNCERTAINTY_MODE_BOTH}


class UBMDCalculator(Calculator):
    """Model energies/forces/stress + uncertainties, optionally biased: E_b = E - tau u.

    The arguments after ``model`` are ASE parameters (``calc.parameters``, changed with
    ``calc.set(...)``).

    Args:
        model: path to a model file written by ``ubmd export``, or an ``ExportedModel``.
        tau_forces: tau_F (dimensionless; bias force ~ tau_F x RMS true force once scaled).
        tau_stress: tau_sigma (dimensionless), bias stress for NPT.
        window: W, number of evaluations in the adaptive-scale window (s = 0 before W).
        weights: per-element weights of the bias force, e.g. ``{"H": 0.0}`` (others 1); every
            element named must be one of the model's (ValueError otherwise).
        uncertainty: ``"both"`` (compute u and u_i; the bias uses u), ``"atomic"`` (u_i only,
            no bias), ``"none"`` (plain MLIP); ``"total"`` is the older name of ``"both"``.
        device: ``"cpu"`` or ``"cuda"`` (a model file is loaded there).

    The bias arithmetic (adaptive scales, same-step rule, coefficients, bias energy) is
    :class:`ubmd.bias.Bias`, the mirror of the LAMMPS pair style's ``ubmd::Bias``. ``set()`` of a
    bias parameter keeps the current trajectory's scale windows (ASE's ``set`` changes settings,
    it does not start a new trajectory); ``reset()`` clears the results *and* starts a new
    trajectory (windows emptied: the bias is off for the next ``window`` evaluations), as
    :meth:`reset_bias` does alone.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress",
                              K.UNBIASED_FORCES, K.BIAS_FORCES, K.UNBIASED_STRESS, K.BIAS_STRESS,
                              K.VIRIAL]
    #: results that need an uncertainty (added to an instance's implemented_properties)
    uncertainty_properties = [K.UNCERTAINTY, K.ATOMIC_UNCERTAINTY, K.BIAS_ENERGY,
                              K.SCALE_FORCES, K.SCALE_STRESS]
    default_parameters = {"tau_forces": 0.0, "tau_stress": 0.0, "window": 100, "weights": None,
                          "uncertainty": K.UNCERTAINTY_MODE_BOTH}
    _BIAS_PARAMETERS = ("tau_forces", "tau_stress", "window", "weights", "uncertainty")

    def __init__(self, model, tau_forces: float = 0.0, tau_stress: float = 0.0, window: int = 100,
                 weights: dict | None = None, uncertainty: str = K.UNCERTAINTY_MODE_BOTH,
                 device: str = "cpu", **kwargs):
        check_device(device, "device")
        self.model_path = None
        self.device = str(device)  # the setting, as given (todict, pickling)
        if isinstance(model, (str, Path)):
            from .model_file.load import load_model_file

            self.model_path = str(Path(model).resolve())
            model, meta = load_model_file(model, device)
            zs = [int(z) for z in meta[K.META_ATOMIC_NUMBERS]]
            self.has_uncertainty = meta[K.META_UNCERTAINTY] != K.UNCERTAINTY_NONE
            self.cutoff = float(meta[K.META_CUTOFF])
        else:
            zs = list(model.features.members[0].atomic_numbers)
            self.has_uncertainty = bool(model.has_uncertainty)
            self.cutoff = float(model.cutoff)
            model = model.to(device)
        self.model = model
        self._torch_device = torch.device(device)
        self.dtype = model_dtype(model)
        self.species_map = {z: k for k, z in enumerate(zs)}
        self.bias = Bias()
        super().__init__(tau_forces=tau_forces, tau_stress=tau_stress, window=window,
                         weights=weights, uncertainty=uncertainty, **kwargs)
        self._apply_bias(self._checked_bias(self.parameters), new_window=True)  # also defaults

    # ------------------------------------------------------------------ ASE conventions
    def todict(self, skip_default: bool = True) -> dict:
        """The calculator's settings, as ASE writes them to trajectories and databases:
        ``model`` (the model file's absolute path; None for a model given in memory), ``device``
        (unless ``cpu``) and the ASE parameters (those that differ from the defaults unless
        ``skip_default`` is False). ``UBMDCalculator(**calc.todict())`` builds the same
        calculator."""
        out = {"model": self.model_path}
        if self.device != "cpu" or not skip_default:
            out["device"] = self.device
        out.update(super().todict(skip_default=skip_default))
        return out

    def __getstate__(self) -> dict:
        """Pickle without the TorchScript module of a model file (it is loaded again from
        ``model_path`` on unpickling); a model given in memory is pickled with the rest."""
        state = self.__dict__.copy()
        if self.model_path is not None:
            state["model"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.model is None:
            from .model_file.load import load_model_file

            self.model, _ = load_model_file(self.model_path, self.device)

    @property
    def elements(self) -> list[str]:
        """The model's elements (chemical symbols, in the model's order)."""
        return [chemical_symbols[z] for z in self.species_map]

    @property
    def uncertainty(self) -> str:
        """What is computed: ``both``, ``atomic`` or ``none`` (``none`` for a model without
        uncertainty, whatever was asked)."""
        mode = self.parameters["uncertainty"]
        return mode if self.has_uncertainty else K.UNCERTAINTY_MODE_NONE

    @property
    def tau_forces(self) -> float:
        return self.bias.tau_forces

    @property
    def tau_stress(self) -> float:
        return self.bias.tau_stress

    def set(self, **kwargs) -> dict:
        """Change parameters (ASE semantics: returns the changed ones, clears the results when
        any changed). Bias parameters are checked first and take effect at once, or nothing
        changes (a refused value leaves the calculator as it was); the adaptive-scale windows are
        kept unless ``window`` changes."""
        if "uncertainty" in kwargs:
            mode = _MODE_ALIASES.get(kwargs["uncertainty"], kwargs["uncertainty"])
            if mode not in K.UNCERTAINTY_MODES:
                raise ValueError(f"uncertainty must be one of {', '.join(K.UNCERTAINTY_MODES)} "
                                 f"(or {K.UNCERTAINTY_MODE_TOTAL}, the older name of "
                                 f"{K.UNCERTAINTY_MODE_BOTH}), got {kwargs['uncertainty']!r}")
            kwargs["uncertainty"] = mode
        new_bias = None
        if hasattr(self, "bias") and any(k in self._BIAS_PARAMETERS for k in kwargs):
            new_bias = self._checked_bias({**self.parameters, **kwargs})  # raises, changes nothing
        changed = super().set(**kwargs)
        if new_bias is not None and any(k in self._BIAS_PARAMETERS for k in changed):
            self._apply_bias(new_bias, new_window="window" in changed)
        if changed:  # stale results (not Calculator.reset: that starts a new trajectory here)
            self.atoms, self.results = None, {}
        return changed

    def _checked_bias(self, p: dict) -> Bias:
        """A :class:`Bias` for parameters ``p``, or a ValueError naming what is wrong."""
        weights = Bias.weights_by_species(_check_symbols(p["weights"]), self.elements)
        mode = p["uncertainty"] if self.has_uncertainty else K.UNCERTAINTY_MODE_NONE
        if (p["tau_forces"] or p["tau_stress"]) and mode != K.UNCERTAINTY_MODE_BOTH:
            raise ValueError("a bias (tau_forces or tau_stress > 0) needs uncertainty='both' "
                             "and a model with an uncertainty")
        return Bias(p["tau_forces"], p["tau_stress"], p["window"], weights=weights)

    def _apply_bias(self, bias: Bias, new_window: bool) -> None:
        if new_window or bias.window != self.bias.window:
            self.bias = bias
        else:  # keep this trajectory's windows
            self.bias.tau_forces, self.bias.tau_stress = bias.tau_forces, bias.tau_stress
            self.bias.set_weights(bias.weights)
        self.implemented_properties = list(type(self).implemented_properties)  # a new list
        if self.uncertainty != K.UNCERTAINTY_MODE_NONE:
            self.implemented_properties += self.uncertainty_properties

    @tau_forces.setter
    def tau_forces(self, value: float) -> None:
        self.set(tau_forces=float(value))

    @tau_stress.setter
    def tau_stress(self, value: float) -> None:
        self.set(tau_stress=float(value))

    def set_weights(self, weights: dict | None) -> None:
        """Per-element bias weights, e.g. ``{"H": 0.0}`` (elements not named: 1); each element
        must be one of :attr:`elements`. Same as ``set(weights=...)``."""
        self.set(weights=weights)

    def reset_bias(self) -> None:
        """Start a new trajectory: the adaptive-scale windows are emptied (the bias is off for
        the next ``window`` evaluations)."""
        self.bias.reset()

    def reset(self) -> None:
        """Clear the results and start a new trajectory (see :meth:`reset_bias`)."""
        super().reset()
        if hasattr(self, "bias"):
            self.bias.reset()

    def neighbours(self, positions: np.ndarray, cell: np.ndarray, pbc) -> tuple:
        """The edges (i, j, integer cell shifts S: r_ij = r_j - r_i + S @ cell) within the model's
        cutoff (:func:`ubmd.neighbours.neighbour_list`); a subclass may time it or
        use another list."""
        return neighbour_list(positions, cell, pbc, self.cutoff)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if (self.bias.tau_forces or self.bias.tau_stress) and \
                self.uncertainty == K.UNCERTAINTY_MODE_BOTH:
            _refuse_optimiser(self.bias.tau_forces, self.bias.tau_stress)
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
        dt, dev = self.dtype, self._torch_device
        ev = torch.tensor(pos[j] - pos[i] + s @ cell, dtype=dt, device=dev).requires_grad_(True)
        ei = torch.tensor(np.stack([i, j]), dtype=torch.long, device=dev)
        species = torch.tensor([self.species_map[int(z)] for z in numbers], dtype=torch.long,
                               device=dev)
        want_u = self.uncertainty != K.UNCERTAINTY_MODE_NONE
        bias_on = self.uncertainty == K.UNCERTAINTY_MODE_BOTH and self.bias.active()
        e_at, phi = self.model.atomic(ev, ei, species, n, want_u)
        energy = e_at.sum()
        (g_e,) = torch.autograd.grad(energy, ev, retain_graph=bias_on)
        forces = forces_from_edge_grad(g_e, ei, n).detach().double().cpu().numpy()
        batch0 = torch.zeros(ev.shape[0], dtype=torch.long, device=dev)
        virial = virial_from_edge_grad(g_e, ev, batch0, 1)[0].detach().double().cpu().numpy()
        periodic = bool(pbc.all())
        vol = abs(np.linalg.det(cell)) if periodic else 0.0
        e_val = float(energy.detach())
        r = {"energy": e_val, "free_energy": e_val,
             "energies": e_at.detach().double().cpu().numpy()}
        bias_f = np.zeros((n, 3))
        bias_w = np.zeros((3, 3))
        if want_u:
            phi_sum = phi.sum(0)
            u, v = self.model.total_uncertainty(phi_sum.detach(), float(n))
            r[K.UNCERTAINTY] = float(u)
            r[K.ATOMIC_UNCERTAINTY] = self.model.atomic_uncertainty(
                phi.detach()).double().cpu().numpy()
            if bias_on:
                (g_u,) = torch.autograd.grad((v.detach() * phi_sum).sum(), ev)
                du_dr = -forces_from_edge_grad(g_u, ei, n).detach().double().cpu().numpy()
                du_deps = -virial_from_edge_grad(g_u, ev, batch0, 1)[0].detach().double().cpu().numpy()
                self.bias.update(GlobalNorms.from_arrays(forces, du_dr, virial, du_deps))
                bias_f = self.bias.force_coefficients(species.cpu().numpy())[:, None] * du_dr
                if periodic:
                    bias_w = self.bias.stress_coefficient() * du_deps
            r[K.SCALE_FORCES] = self.bias.scale_forces() if bias_on else 0.0
            r[K.SCALE_STRESS] = self.bias.scale_stress() if bias_on else 0.0
            r[K.BIAS_ENERGY] = self.bias.energy(float(u)) if bias_on else 0.0
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


#: modules whose code, when it calls the calculator, is a geometry optimisation
OPTIMISER_MODULES = ("ase.optimize", "ase.mep", "ase.neb")


def _refuse_optimiser(tau_forces: float, tau_stress: float, max_depth: int = 50) -> None:
    """A ValueError when an ASE optimiser (or NEB) called the calculator: with a bias on it
    would minimise E - tau u (the bias pulls towards uncertain structures), not E."""
    from ase.optimize.optimize import Optimizer

    frame = sys._getframe(2)
    for _ in range(max_depth):
        if frame is None:
            return
        module = frame.f_globals.get("__name__", "")
        # (MD integrators run through ase.optimize.optimize's Dynamics too: look at `self`)
        owner = frame.f_locals.get("self") if module.startswith(OPTIMISER_MODULES) else None
        if module.startswith(OPTIMISER_MODULES) and (
                not module.startswith("ase.optimize") or isinstance(owner, Optimizer)):
            name = type(owner).__name__ if owner is not None else module
            raise ValueError(
                f"an ASE optimiser ({name}) runs with the uncertainty bias on (tau_forces "
                f"{tau_forces:g}, tau_stress {tau_stress:g}): it would minimise E - tau u, not "
                "the model's energy. Switch the bias off first: calc.set(tau_forces=0, "
                "tau_stress=0) (pair_style ubmd refuses minimize with a bias alike)")
        frame = frame.f_back


def _check_symbols(weights: dict | None) -> dict:
    """``weights`` with every key a chemical symbol (ValueError naming the bad one)."""
    for el in weights or {}:
        if el not in symbol_to_z:
            raise ValueError(f"unknown element {el!r} in bias weights (a chemical symbol: H, He, "
                             "...)")
    return dict(weights or {})
