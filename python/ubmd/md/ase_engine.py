"""The ASE engine: biased MD with :class:`ubmd.calculator.UBMDCalculator` and ASE integrators.

Integrators (ASE units inside: eV, Å, fs; pressure converted from bar once, here):

* NVT ``langevin``: :class:`ase.md.langevin.Langevin` (friction in 1/fs);
* NVT ``nose_hoover``: :class:`ase.md.nose_hoover_chain.NoseHooverChainNVT` (tdamp in fs);
* NPT: :class:`ase.md.nose_hoover_chain.MTKNPT` -- Nosé-Hoover chains + the Martyna-Tobias-Klein
  barostat with full cell freedom (all nine cell components move; the counterpart of LAMMPS
  ``fix npt ... tri``), driven by the calculator's stress, bias stress included. ASE's
  ``Inhomogeneous_NPTBerendsen`` only rescales the three cell lengths and ``ase.md.npt.NPT``
  needs an upper-triangular cell, so neither gives the full cell freedom the method asks for.

Each trajectory starts from fresh Maxwell-Boltzmann velocities (seeded) and an unbiased window
(the adaptive bias scale is 0 for the first ``window`` evaluations). See :mod:`ubmd.md.task`
for the files a walker writes. A model exported without an uncertainty runs plain MD: its
uncertainties are NaN in the trace and the candidates (no ``atomic_uncertainty`` array), the
threshold never stops it, and a bias (``tau_forces`` or NPT ``tau_stress`` > 0) is refused before
the first step.
"""

from __future__ import annotations

import math
import time

import numpy as np
from ase import Atoms, units

from .. import keys as K
from ..io import save_npz_atomic, write_frames_atomic
from .starts import clean_copy
from ..progress import Heartbeat
from .task import (CANDIDATES, PROGRESS, STOP_MAX_STEPS, STOP_RUNAWAY, STOP_THRESHOLD, STOP_TIME,
                   RUNAWAY_GRACE_FACTOR, TRACE, WalkerTask, dihedral_values,
                   runaway_grace_steps, runaway_temperature)

BAR_TO_EV_PER_A3 = units.bar  # 1 bar in eV/Å^3


def make_dynamics(atoms: Atoms, params, temperature: float, pressure_bar: float,
                  rng: np.random.Generator):
    """The ASE integrator for ``params.ensemble``/``params.thermostat`` (timestep in fs)."""
    dt = params.timestep * units.fs
    if params.ensemble == "npt":
        if not np.all(atoms.pbc):
            raise ValueError("NPT walkers need a cell periodic in x, y and z; use ensemble: nvt "
                             "for molecules and slabs")
        from ase.md.nose_hoover_chain import MTKNPT

        return MTKNPT(atoms, timestep=dt, temperature_K=temperature,
                      pressure_au=pressure_bar * BAR_TO_EV_PER_A3,
                      tdamp=params.tdamp * units.fs, pdamp=params.pdamp * units.fs)
    if params.thermostat == "nose_hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=temperature,
                                  tdamp=params.tdamp * units.fs)
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    atoms.set_constraint(FixCom())  # no centre-of-mass drift (ASE's recommended replacement of fixcm)
    return Langevin(atoms, timestep=dt, temperature_K=temperature,
                    friction=params.friction / units.fs, fixcm=False, rng=rng)


def init_velocities(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann velocities at ``temperature`` K, no net momentum (nor rotation for
    non-periodic systems)."""
    from ase.md import velocitydistribution as vd

    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29
        vd.thermalize_momenta(atoms, temperature, rng=rng)
    else:  # pragma: no cover - older ASE
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary, ZeroRotation = vd.Stationary, vd.ZeroRotation
    Stationary(atoms)
    if not np.any(atoms.pbc) and len(atoms) > 2:
        ZeroRotation(atoms)


def _uncertainties(res: dict) -> tuple[float, float]:
    """(total u, max atomic u) of a calculator result; NaN for a model without uncertainty."""
    if K.ATOMIC_UNCERTAINTY not in res:
        return math.nan, math.nan
    return float(res[K.UNCERTAINTY]), float(np.max(res[K.ATOMIC_UNCERTAINTY]))


def _frame(atoms: Atoms, res: dict, task: WalkerTask, step: int, trigger: bool,
           temperature: float, runaway: bool = False) -> Atoms:
    frame = clean_copy(atoms)
    u, max_u = _uncertainties(res)
    frame.info.update(walker=task.index, step=step, time_fs=step * task.params.timestep,
                      uncertainty=u, max_atomic_uncertainty=max_u, temperature=temperature,
                      trigger=trigger, runaway=runaway)
    if K.ATOMIC_UNCERTAINTY in res:
        frame.arrays["atomic_uncertainty"] = np.asarray(res[K.ATOMIC_UNCERTAINTY], dtype=float)
    return frame


def _check_bias(calc, task: WalkerTask, tau_stress: float) -> None:
    """A bias needs a model with an uncertainty: refuse it before any MD step."""
    p = task.params
    if not calc.has_uncertainty and (p.tau_forces or tau_stress):
        raise ValueError(f"{task.model_file} was exported without an uncertainty "
                         f"(uncertainty.kind: none), so it cannot drive a bias (tau_forces "
                         f"{p.tau_forces:g}, tau_stress {tau_stress:g}); set both to 0 for plain MD "
                         "or export a model with an uncertainty")


def run_ase_walker(task: WalkerTask) -> dict:
    """Run one ASE walker (see the module docstring); returns its summary dict."""
    import torch

    from ..calculator import UBMDCalculator

    torch.set_num_threads(1)
    p = task.params
    t_start = time.perf_counter()
    atoms = clean_copy(task.start)
    npt = p.ensemble == "npt"
    tau_stress = p.tau_stress if npt else 0.0
    calc = UBMDCalculator(task.model_file, window=p.window)  # no bias yet: checked first
    _check_bias(calc, task, tau_stress)
    # weights of elements the model does not know act on no atom (walkers.weights may name
    # elements of other systems; the LAMMPS walkers drop them from the deck alike)
    calc.set(tau_forces=float(p.tau_forces), tau_stress=float(tau_stress),
             weights={el: w for el, w in (p.weights or {}).items() if el in calc.elements})
    atoms.calc = calc
    rng = np.random.default_rng(task.seed)
    init_velocities(atoms, task.temperature, rng)
    periodic = bool(np.all(atoms.pbc))
    trace = {k: [] for k in ("step", "time_fs", "uncertainty", "max_atomic_uncertainty",
                             "energy", "bias_energy", "temperature", "volume")}
    cvs = []
    candidates: list[Atoms] = []
    stop, step, max_u, reflected = STOP_MAX_STEPS, 0, math.nan, 0
    t_runaway = runaway_temperature(task.temperature, atoms.get_number_of_degrees_of_freedom(),
                                    p.runaway_factor)
    grace = runaway_grace_steps(p)
    t_max = 0.0
    beat = Heartbeat(f"{task.workdir}/{PROGRESS}")
    restore = (atoms.get_positions(), atoms.get_cell())  # the last sampled (trusted) frame
    while stop == STOP_MAX_STEPS and step < p.max_steps:
        # one segment: until max_steps, or a crossing that sends the walker back (reflections)
        first = step
        dyn = make_dynamics(atoms, p, task.temperature, task.pressure, rng)
        if first == 0:  # the degrees of freedom of get_temperature (FixCom of langevin: 3N - 3)
            t_runaway = runaway_temperature(task.temperature,
                                            atoms.get_number_of_degrees_of_freedom(),
                                            p.runaway_factor)
        for k, _ in enumerate(dyn.irun(p.max_steps - first)):
            step = first + k
            if k == 0 and first > 0:
                continue  # the restored frame: recorded already
            res = calc.results
            u, max_u = _uncertainties(res)
            temp = atoms.get_temperature()
            t_max = max(t_max, temp)
            # the start frame is labelled already; without an uncertainty (NaN) never over
            over = step > 0 and max_u > p.threshold
            # a start away from equilibrium heats the walker for a while: a higher level then
            level = t_runaway * (RUNAWAY_GRACE_FACTOR if step <= grace else 1.0)
            runaway = step > 0 and not over and temp > level
            beat(step=step, max_steps=p.max_steps, temperature=temp, max_atomic_uncertainty=max_u)
            if step % p.log_every == 0 or over or runaway:
                trace["step"].append(step)
                trace["time_fs"].append(step * p.timestep)
                trace["uncertainty"].append(u)
                trace["max_atomic_uncertainty"].append(max_u)
                trace["energy"].append(res["energy"])
                trace["bias_energy"].append(res.get(K.BIAS_ENERGY, 0.0))
                trace["temperature"].append(temp)
                trace["volume"].append(atoms.get_volume() if periodic else math.nan)
                if task.dihedrals:
                    cvs.append(dihedral_values(atoms, task.dihedrals))
            if (step % p.sample_every == 0 and step > 0) or over or runaway:
                candidates.append(_frame(atoms, res, task, step, over or runaway, temp, runaway))
                if not (over or runaway):
                    restore = (atoms.get_positions(), atoms.get_cell())
            if over and reflected < p.reflections:
                # back to the last sampled frame with fresh velocities (the bias window goes on)
                reflected += 1
                atoms.set_cell(restore[1], scale_atoms=False)
                atoms.set_positions(restore[0])
                init_velocities(atoms, task.temperature, rng)
                # the next segment starts at this step number (its k = 0 is the restored frame,
                # not an MD step): its first MD step is step + 1, as in the LAMMPS walkers
                break
            if over or runaway:  # a runaway is never reflected: the run has left physics
                stop = STOP_THRESHOLD if over else STOP_RUNAWAY
                break
            if p.max_time_s is not None and time.perf_counter() - t_start > p.max_time_s:
                stop = STOP_TIME
                break
        else:
            break  # max_steps reached within the segment
    if task.dihedrals:
        trace["cvs"] = np.asarray(cvs, dtype=float).reshape(-1, 2)
    workdir = task.workdir
    write_frames_atomic(candidates, f"{workdir}/{CANDIDATES}")
    save_npz_atomic(trace, f"{workdir}/{TRACE}")
    beat(force=True, step=step, max_steps=p.max_steps, temperature=atoms.get_temperature(),
         max_atomic_uncertainty=max_u, stop_reason=stop)
    return {"index": task.index, "engine": "ase", "stop_reason": stop, "n_steps": step,
            "time_fs": step * p.timestep, "max_atomic_uncertainty": max_u,
            "n_candidates": len(candidates), "ensemble": p.ensemble, "reflections": reflected,
            "max_temperature_K": t_max,
            "runaway_temperature_K": t_runaway if math.isfinite(t_runaway) else None,
            "has_uncertainty": bool(calc.has_uncertainty),
            "final_volume": atoms.get_volume() if periodic else None}
