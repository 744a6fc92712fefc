"""The LAMMPS engine: one input deck per walker with ``pair_style ubmd``, run as a subprocess.

The deck (``in.walker.lmp`` in the walker directory, kept for inspection and reruns by hand):
``units metal``, the start structure from ``start.data``, ``pair_style ubmd tau_forces tau_F
[tau_stress tau_sigma] window W [weights El w ...]``, fresh Gaussian velocities, the thermostat
(``fix nve`` + ``fix langevin`` + ``fix momentum`` removing the centre-of-mass drift, ``fix
nvt``, or ``fix npt ... tri`` with full cell freedom),
``compute pair ubmd`` (u, bias energy, scales, max u_i), ``compute ubmd/atom`` + ``compute reduce
max`` + ``fix halt 1`` on the threshold (a finite one: none for run_md's default, no stop),
the runaway guard (:func:`runaway_lines`: ``fix halt 1`` on the kinetic temperature,
pair-style independent), ``dump custom`` of candidate frames with
per-atom uncertainties every ``sample_every`` steps, and after the run a ``write_dump`` of the
last (triggering) frame. ``lmp`` (or ``mpirun -np k lmp``) runs in its own process group, killed
as a whole after ``max_time_s``; meanwhile the last thermo row of its log is the walker's
heartbeat (``progress.json``).

Units: the config is in ASE units (fs, 1/fs, bar, K); LAMMPS ``units metal`` wants ps for the
timestep and damping times; pressures are bar in both. The conversion is :func:`metal_times`,
here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from .. import keys as K
from ..analysis.readers import read_dump_columns
from ..io import save_npz_atomic, write_frames_atomic
from ..model_file import model_info
from ..plugin import find_executable, plugin_path
from ..progress import Heartbeat
from .lammps_log import last_thermo_row, parse_thermo
from .task import (CANDIDATES, PROGRESS, STOP_MAX_STEPS, STOP_RUNAWAY, STOP_THRESHOLD, STOP_TIME,
                   RUNAWAY_GRACE_FACTOR, TRACE, WalkerTask, dihedral_values,
                   runaway_grace_steps, runaway_temperature)

FS_PER_PS = 1000.0
# thermo columns of `compute ubmd all pair ubmd` (column numbers from ubmd.keys / ubmd_keys.h)
U_COLUMN = K.pair_column(K.EXTRACT_UNCERTAINTY, "ubmd")
E_BIAS_COLUMN = K.pair_column(K.EXTRACT_BIAS_ENERGY, "ubmd")
DECK = "in.walker.lmp"
DATA = "start.data"
LOG = "log.lammps"
DUMP = "candidates.lammpstrj"
TRACE_DUMP = "trace.lammpstrj"
LAST_DUMP = "last.lammpstrj"
CROSSINGS_DUMP = "crossings.lammpstrj"  # frames that crossed the threshold and were reflected
THRESHOLD_FIX = "stop"  # fix halt on the largest atomic uncertainty
RUNAWAY_FIX = "runaway"  # fix halt on the kinetic temperature
RUNAWAY_FIXES = (RUNAWAY_FIX, RUNAWAY_FIX + "_start")  # after / during the start's grace steps
THERMO = ("step", "time", "temp", "pe", U_COLUMN, E_BIAS_COLUMN, "c_umax", "vol")


def runaway_lines(t_max: float, fix_id: str = RUNAWAY_FIX, every: int = 1, grace: int = 0,
                  grace_factor: float = RUNAWAY_GRACE_FACTOR) -> list[str]:
    """The deck lines of the runaway guard: stop the run (``fix halt ... error continue``, so
    the commands after ``run`` still execute) once the kinetic temperature exceeds ``t_max`` K
    -- or, during the first ``grace`` steps (timestep numbers 0..grace of the run),
    ``grace_factor`` x ``t_max``: a second fix, ``<fix_id>_start``, holds that level from the
    start on, and ``<fix_id>`` counts only after the grace. They do not depend on the pair
    style; the values for a walker are :func:`ubmd.md.task.runaway_temperature` and
    ``MDSettings.runaway_grace``."""
    def halt(suffix: str, formula: str, level: float) -> list[str]:
        var = f"{fix_id}_tkin{suffix}"
        return [f"variable {var} equal {formula}",
                f"fix {fix_id}{suffix} all halt {int(every)} v_{var} > {float(level)!r} "
                "error continue message yes"]

    if grace <= 0:
        return halt("", "temp", t_max)
    return (halt("_start", "temp", grace_factor * t_max)
            + halt("", f"ternary(step>{int(grace)},temp,0.0)", t_max))


def metal_times(params) -> dict:
    """The walker's times in LAMMPS metal units (ps): timestep, Langevin damping time (1/friction),
    Nosé-Hoover thermostat and barostat damping times."""
    return {"timestep": params.timestep / FS_PER_PS,
            "langevin_damp": 1.0 / params.friction / FS_PER_PS,
            "tdamp": params.tdamp / FS_PER_PS,
            "pdamp": params.pdamp / FS_PER_PS}


def _boundary(atoms: Atoms) -> str:
    """``p`` for periodic directions, ``m`` (shrink-wrapped, never smaller than the data file's
    box) for the others. Plain ``s`` shrinks the box to the atoms' extent, which for a small or
    planar molecule (H2O lies in a plane) is far below the cutoff: LAMMPS stops with "Cannot use
    neighbor bins - box size << cutoff"."""
    return " ".join("p" if p else "m" for p in atoms.pbc)


def _box_for_lammps(atoms: Atoms, cutoff: float) -> Atoms:
    """A copy whose cell encloses the atoms in every non-periodic direction with a margin of
    cutoff + 5 Å on each side (LAMMPS needs a box; with ``m`` boundaries it is the smallest box
    LAMMPS will use, so the neighbour bins stay larger than the cutoff)."""
    atoms = atoms.copy()
    if np.all(atoms.pbc):
        return atoms
    cell = np.array(atoms.get_cell())
    lo, hi = atoms.positions.min(0), atoms.positions.max(0)
    for k in range(3):
        if not atoms.pbc[k]:
            cell[k] = 0.0
            cell[k, k] = hi[k] - lo[k] + 2.0 * cutoff + 10.0
    atoms.set_cell(cell)
    shift = np.where(atoms.pbc, 0.0, -lo + cutoff + 5.0)
    atoms.positions += shift
    return atoms


def write_data_file(atoms: Atoms, path: Path, species: list[str], cutoff: float) -> None:
    """LAMMPS data file (atom_style atomic, types in model species order, masses)."""
    from ase.io import write

    missing = sorted(set(atoms.get_chemical_symbols()) - set(species))
    if missing:
        raise ValueError(f"elements {missing} are not in the model (species {species})")
    write(str(path), _box_for_lammps(atoms, cutoff), format="lammps-data", specorder=species,
          masses=True, atom_style="atomic", units="metal")


def deck_text(task: WalkerTask, plugin: Path, periodic: bool, boundary: str) -> str:
    """The LAMMPS input deck of one walker (see the module docstring)."""
    p = task.params
    t = metal_times(p)
    species = " ".join(task.species)
    T, seed = task.temperature, 1 + (task.seed % 900_000_000)
    npt = p.ensemble == "npt"
    if npt and not periodic:
        raise ValueError("NPT walkers need a cell periodic in x, y and z; use ensemble: nvt")
    style = f"pair_style ubmd {K.PAIR_KW_TAU_FORCES} {p.tau_forces:g} window {p.window}"
    if npt and p.tau_stress > 0:
        style += f" {K.PAIR_KW_TAU_STRESS} {p.tau_stress:g}"
    # weights of elements the model does not know act on no atom (as in the ASE walkers);
    # pair_style ubmd would refuse them
    weights = {el: w for el, w in (p.weights or {}).items() if el in task.species}
    if weights:
        style += " weights " + " ".join(f"{el} {float(w):g}" for el, w in weights.items())
    if npt:
        integ = [f"fix integrate all npt temp {T:g} {T:g} {t['tdamp']:g} "
                 f"tri {task.pressure:g} {task.pressure:g} {t['pdamp']:g}"]
    elif p.thermostat == "nose_hoover":
        integ = [f"fix integrate all nvt temp {T:g} {T:g} {t['tdamp']:g}"]
    else:
        # Not ``zero yes``: it subtracts the same force from every atom, which for mixed masses
        # breaks fluctuation-dissipation (light atoms get extra noise): 22-atom alanine
        # dipeptide ran at 340 K with a 300 K target. Instead the centre-of-mass momentum is
        # removed every 10 steps (the ASE walkers' FixCom).
        integ = ["fix integrate all nve",
                 f"fix thermostat all langevin {T:g} {T:g} {t['langevin_damp']:g} {seed}",
                 "fix zeromom all momentum 10 linear 1 1 1"]
    dump_cols = "id type x y z c_uatom"
    lines = [
        f"# ubmd walker {task.index}: {p.ensemble} at {T:g} K"
        + (f", {task.pressure:g} bar" if npt else "") + " (written by ubmd.md.lammps_engine)",
        "units metal", "atom_style atomic", "atom_modify map array", f"boundary {boundary}",
        f"plugin load {plugin}", f"read_data {DATA}",
        *(["change_box all triclinic"] if npt else []),
        style, f"pair_coeff * * {task.model_file} {species}",
        f"neighbor {p.lammps.neighbor_skin:g} bin",
        f"timestep {t['timestep']:g}",
        f"velocity all create {T:g} {seed} mom yes rot {'no' if periodic else 'yes'} dist gaussian",
        *integ,
        "compute ubmd all pair ubmd", "compute uatom all ubmd/atom",
        "compute umax all reduce max c_uatom", "variable umax equal c_umax",
        "thermo_style custom " + " ".join(THERMO),
        f"thermo {p.log_every}", "thermo_modify flush yes",
        f"dump candidates all custom {p.sample_every} {DUMP} {dump_cols}",
        "dump_modify candidates sort id",
    ]
    if task.dihedrals:
        lines += [f"dump trace all custom {p.log_every} {TRACE_DUMP} id type x y z",
                  "dump_modify trace sort id"]
    thr = f"{float(p.threshold)!r}"
    stops_on_u = math.isfinite(p.threshold)  # an infinite threshold (run_md's default): no stop
    if stops_on_u:
        lines += [f"fix {THRESHOLD_FIX} all halt 1 v_umax > {thr} error continue message yes"]
    t_run = runaway_temperature(T, 3 * len(task.start) - 3, p.runaway_factor)
    if math.isfinite(t_run):
        lines += runaway_lines(t_run, grace=runaway_grace_steps(p))
    lines += [str(c) for c in p.lammps.extra_commands]
    if p.reflections == 0 or not stops_on_u:
        lines.append(f"run {p.max_steps}")
    else:
        # a crossing frame is kept and the walker goes back to its last sampled frame (the
        # candidates dump) with fresh velocities, p.reflections times; timesteps run on, so
        # `run ... upto` ends every segment at max_steps. A run that ended below the threshold
        # (max_steps, or the runaway guard) is never reflected.
        restore_box = "box yes" if periodic else "box no"
        lines += [f"variable reflect loop {p.reflections + 1}",
                  f"variable back equal floor((step-1)/{p.sample_every})*{p.sample_every}",
                  "label segment",
                  f"run {p.max_steps} upto",
                  f'if "${{umax}} <= {thr}" then "jump SELF done"',
                  "next reflect",
                  "jump SELF reflect_now",
                  "jump SELF done",  # reflections used up: this crossing stops the walker
                  "label reflect_now",
                  f"write_dump all custom {CROSSINGS_DUMP} {dump_cols} modify sort id append yes",
                  f"read_dump {DUMP} ${{back}} x y z {restore_box} timestep no",
                  f"velocity all create {T:g} $({seed}+7919*v_reflect) mom yes "
                  f"rot {'no' if periodic else 'yes'} dist gaussian",
                  "jump SELF segment",
                  "label done"]
    lines.append(f"write_dump all custom {LAST_DUMP} {dump_cols} modify sort id")
    return "\n".join(lines) + "\n"


def _command(task: WalkerTask) -> list[str]:
    lc = task.params.lammps
    lmp = find_executable(lc.command)
    if lmp is None:
        raise FileNotFoundError(f"LAMMPS executable {lc.command!r} not found on PATH or next to "
                                f"{sys.executable}; set the LAMMPS command (lammps.command of the MD settings: "
                                "walkers.lammps.command in an AL config)")
    base = [lmp, "-in", DECK, "-log", LOG, "-screen", "none", "-nocite"]
    if lc.mpi_ranks > 1:
        mpirun = find_executable(lc.mpirun)
        if mpirun is None:
            raise FileNotFoundError(f"{lc.mpirun!r} not found; set lammps.mpirun of the MD settings "
                                    "(walkers.lammps.mpirun in an AL config)")
        return [mpirun, "-np", str(lc.mpi_ranks), *base]
    return base


def _run(cmd: list[str], cwd: Path, timeout: float | None,
         on_poll=None) -> tuple[int | None, bool]:
    """Run in a new process group; on timeout kill the whole group. ``on_poll()`` is called
    about once a second while it runs. Returns (rc, timed_out)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    with open(cwd / "lammps.out", "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        while True:
            try:
                return proc.wait(timeout=1.0), False
            except subprocess.TimeoutExpired:
                if timeout is not None and time.monotonic() - t0 >= timeout:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return None, True
                if on_poll is not None:
                    on_poll()


def dump_atoms(frame, species: list[str]) -> Atoms:
    """An ASE Atoms from one :class:`ubmd.analysis.readers.DumpFrame` (types in model species
    order; the box in LAMMPS's orientation, which is all an invariant model needs)."""
    from ase.io.lammpsrun import construct_cell

    box = frame.box
    flags = frame.box_header.split()
    tilt = box[:, 2] if box.shape[1] == 3 else np.zeros(3)
    cell, disp = construct_cell(box[:, :2].ravel(), tilt)
    pbc = [f == "pp" for f in flags[-3:]] if len(flags) >= 3 else [True] * 3
    cols = frame.columns
    types = cols["type"].astype(int)
    if types.min() < 1 or types.max() > len(species):
        raise ValueError(f"dump has atom types {sorted(set(types))}, model species {species}")
    pos = np.stack([cols["x"], cols["y"], cols["z"]], axis=1) - disp
    atoms = Atoms(symbols=[species[t - 1] for t in types], positions=pos, cell=cell, pbc=pbc)
    if any(pbc):
        atoms.wrap()
    return atoms


def _frames(path: Path, task: WalkerTask) -> list[Atoms]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    out = []
    for frame in read_dump_columns(path):
        atoms = dump_atoms(frame, list(task.species))
        u_at = np.asarray(frame.columns.get("c_uatom", np.full(len(atoms), np.nan)), dtype=float)
        step = int(frame.timestep)
        atoms.info.update(walker=task.index, step=step, time_fs=step * task.params.timestep,
                          max_atomic_uncertainty=float(np.max(u_at)) if len(u_at) else math.nan)
        atoms.arrays["atomic_uncertainty"] = u_at
        out.append(atoms)
    return out


def run_lammps_walker(task: WalkerTask) -> dict:
    """Write the deck, run LAMMPS, collect candidates and the trace; returns the summary."""
    p = task.params
    wd = Path(task.workdir)
    plugin = plugin_path(p.lammps.plugin)
    info = model_info(task.model_file)
    if not task.species:  # the model's element order (pair_coeff, data file types)
        task = dataclasses.replace(task, species=list(info.species))
    cutoff = info.cutoff
    periodic = bool(np.all(task.start.pbc))
    write_data_file(task.start, wd / DATA, list(task.species), cutoff)
    (wd / DECK).write_text(deck_text(task, plugin, periodic, _boundary(task.start)))
    for stale in (DUMP, TRACE_DUMP, LAST_DUMP, CROSSINGS_DUMP, LOG):
        (wd / stale).unlink(missing_ok=True)
    t0 = time.perf_counter()
    beat = Heartbeat(wd / PROGRESS)

    def heartbeat() -> None:
        row = last_thermo_row(wd / LOG, len(THERMO))
        if row is not None:
            beat(step=int(row[0]), max_steps=p.max_steps, temperature=row[2],
                 max_atomic_uncertainty=row[6])

    rc, timed_out = _run(_command(task), wd, p.max_time_s, heartbeat)
    if rc not in (0, None):
        tail = (wd / "lammps.out").read_text(errors="replace").strip().splitlines()[-5:]
        log_tail = (wd / LOG).read_text(errors="replace").strip().splitlines()[-5:] \
            if (wd / LOG).exists() else []
        raise RuntimeError(f"LAMMPS exited with status {rc}: " + " / ".join(log_tail or tail))
    thermo, halts = parse_thermo(wd / LOG, all_halts=True) if (wd / LOG).exists() else ({}, [])
    reflected = _frames(wd / CROSSINGS_DUMP, task)  # crossings the walker came back from
    # the halt messages of the last segment (0, 1 or 2 fixes): timesteps run on across
    # reflections, so they are the ones past the last crossing the walker came back from
    last_reflected = max((f.info["step"] for f in reflected), default=-1)
    final = [h for h in halts if h["step"] > last_reflected]
    last = _frames(wd / LAST_DUMP, task)
    n_steps = int(thermo["Step"][-1]) if len(thermo.get("Step", [])) else 0
    max_u = float(thermo["c_umax"][-1]) if len(thermo.get("c_umax", [])) else math.nan
    temps = list(thermo.get("Temp", []))
    by_u = next((h for h in final if h["fix"] in (THRESHOLD_FIX, None)), None)
    runaway = next((h for h in final if h["fix"] in RUNAWAY_FIXES), None)
    if runaway and by_u and by_u["step"] <= runaway["step"]:
        runaway = None  # the threshold fired first (or on the same step): a threshold stop
    halted = final[0] if final else None
    if halted:
        n_steps = halted["step"]
        last_u = [f.info["max_atomic_uncertainty"] for f in last]
        max_u = by_u["value"] if by_u and not runaway else (last_u[0] if last_u else max_u)
    if runaway:
        temps.append(runaway["value"])
    triggers = reflected + (last if halted else [])
    for f in triggers:
        f.info["trigger"] = True
    if halted and last and runaway:
        last[0].info["runaway"] = True
        last[0].info["temperature"] = runaway["value"]
    # the sampled frames, and the crossing frames in their place (a crossing on a sampling step
    # is in both files: once, as a crossing)
    by_step = {f.info["step"]: f for f in _frames(wd / DUMP, task) if f.info["step"] > 0}
    by_step.update({f.info["step"]: f for f in triggers})
    frames = [by_step[k] for k in sorted(by_step)]
    u_of_step = dict(zip(thermo.get("Step", []), thermo.get(U_COLUMN, [])))
    t_of_step = dict(zip(thermo.get("Step", []), thermo.get("Temp", [])))
    for f in frames:
        f.info.setdefault("trigger", False)
        f.info.setdefault("runaway", False)
        # total u and temperature of a frame: from the thermo row of its step (NaN between rows)
        f.info["uncertainty"] = float(u_of_step.get(float(f.info["step"]), math.nan))
        f.info.setdefault("temperature", float(t_of_step.get(float(f.info["step"]), math.nan)))
    write_frames_atomic(frames, wd / CANDIDATES)
    trace = {}
    if thermo:
        trace = {"step": thermo["Step"], "time_fs": thermo["Time"] * FS_PER_PS,
                 "uncertainty": thermo[U_COLUMN], "bias_energy": thermo[E_BIAS_COLUMN],
                 "max_atomic_uncertainty": thermo["c_umax"], "energy": thermo["PotEng"],
                 "temperature": thermo["Temp"],
                 "volume": thermo["Volume"] if periodic else np.full(len(thermo["Step"]), np.nan)}
    if task.dihedrals:
        tf = _frames(wd / TRACE_DUMP, task)
        trace["cvs"] = np.asarray([dihedral_values(a, task.dihedrals) for a in tf]).reshape(-1, 2)
    save_npz_atomic(trace, wd / TRACE)
    stop = STOP_TIME if timed_out else (STOP_RUNAWAY if runaway else STOP_THRESHOLD if halted
                                        else STOP_MAX_STEPS)
    beat(force=True, step=n_steps, max_steps=p.max_steps, max_atomic_uncertainty=max_u,
         stop_reason=stop)
    t_run = runaway_temperature(task.temperature, 3 * len(task.start) - 3, p.runaway_factor)
    return {"index": task.index, "engine": "lammps", "stop_reason": stop, "n_steps": n_steps,
            "time_fs": n_steps * p.timestep,
            "max_atomic_uncertainty": max_u,
            "max_temperature_K": float(max(temps)) if temps else math.nan,
            "runaway_temperature_K": t_run if math.isfinite(t_run) else None,
            "n_candidates": len(frames), "ensemble": p.ensemble, "reflections": len(reflected),
            "lammps_s": time.perf_counter() - t0,
            "final_volume": float(thermo["Volume"][-1]) if thermo and periodic else None,
            "command": " ".join(_command(task))}
