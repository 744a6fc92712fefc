"""MD with the reference potential itself (e.g. GFN2-xTB through tblite, any labelling calculator
spec of :mod:`ubmd.labelling`): the baseline that model-driven walkers are compared against.

:func:`run_reference_walker` runs one Langevin walker of fixed length, no model, no threshold,
and keeps its state in one ``.npz`` file every ``chunk`` steps: the same call continues an
interrupted walker, and a larger ``steps`` extends a finished one. Each chunk draws its own seeded
random stream and gets a fresh calculator, so a resumed walker is identical to an uninterrupted
one. Traced every ``log_every`` steps: dihedrals (``cvs``, degrees in [-180, 180)), the kinetic
temperature, and frames with a broken bond (:func:`broken_bonds`).

The state file holds ``steps``, ``positions``, ``momenta`` (ASE units), ``cvs`` [n, n_dihedrals],
``temperature`` [n] (K), ``n_broken`` and ``wall_s``; :func:`reference_walker_summary` condenses it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from ..labelling import make_calculator
from .task import dihedral_values


def broken_bonds(atoms: Atoms, bonds, ref_lengths, factor: float) -> list[tuple[int, int, float]]:
    """The bonds (i, j, length in Å) of ``bonds`` longer than ``factor`` x their reference length
    (``ref_lengths``, one per bond): a molecule that fell apart."""
    bad = []
    for (i, j), r0 in zip(bonds, ref_lengths):
        r = float(atoms.get_distance(i, j))
        if r > factor * r0:
            bad.append((i, j, r))
    return bad


def load_reference_walker(path: str | Path) -> dict | None:
    """The saved state of a walker (module docstring), None when there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def reference_walker_summary(state: dict) -> dict:
    """Steps, traced frames, mean temperature (K), broken frames, wall time and ms per step."""
    steps = int(state["steps"])
    temps = state["temperature"]
    return {"steps": steps, "traced_frames": int(len(state["cvs"])),
            "mean_temperature_K": float(np.mean(temps)) if len(temps) else None,
            "n_broken_frames": int(state["n_broken"]), "wall_s": float(state["wall_s"]),
            "ms_per_step": 1000.0 * float(state["wall_s"]) / steps if steps else None}


def run_reference_walker(path: str | Path, start: Atoms, calculator, temperature: float,
                         steps: int, chunk: int, seed: Sequence[int], timestep_fs: float = 0.5,
                         friction_per_fs: float = 0.01, log_every: int = 10,
                         dihedrals: Sequence[Sequence[int]] = (), bonds=(), bond_lengths=(),
                         max_bond_stretch: float = 1.5) -> dict:
    """Advance the walker whose state is in ``path`` to ``steps`` MD steps (starting from
    ``start`` with Maxwell-Boltzmann velocities at ``temperature`` K when there is no state yet);
    returns :func:`reference_walker_summary`.

    ``calculator``: a labelling calculator spec (``"gfn2-xtb"``, ...); ``seed``: integers that
    name the walker's random streams (velocities: ``seed``; chunk k: ``seed + [k]``); Langevin
    with ``friction_per_fs``, the centre of mass fixed; ``bonds`` with their ``bond_lengths``
    (Å): a traced frame with one longer than ``max_bond_stretch`` times its length counts as
    broken."""
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if chunk <= 0 or log_every <= 0:
        raise ValueError(f"chunk and log_every must be positive, got {chunk} and {log_every}")
    path = Path(path)
    atoms = start.copy()
    atoms.calc = None
    atoms.set_constraint(FixCom())
    tag = [int(x) for x in seed]
    state = load_reference_walker(path)
    if state is None:
        thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(tag))
        Stationary(atoms)
        state = {"steps": np.array(0), "cvs": np.zeros((0, len(dihedrals))),
                 "temperature": np.zeros(0), "n_broken": np.array(0), "wall_s": np.array(0.0)}
    else:
        atoms.set_positions(state["positions"])
        atoms.set_momenta(state["momenta"])
    while int(state["steps"]) < steps:
        done = int(state["steps"])
        n = min(chunk - done % chunk, steps - done)
        atoms.calc = make_calculator(calculator)  # fresh per chunk: resumed == uninterrupted
        rng = np.random.default_rng(tag + [done // chunk + 1])
        dyn = Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=temperature,
                       friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
        cvs, temps, broken = [], [], 0

        def trace():
            nonlocal broken
            cvs.append(dihedral_values(atoms, dihedrals))
            temps.append(atoms.get_temperature())
            broken += bool(broken_bonds(atoms, bonds, bond_lengths, max_bond_stretch))

        dyn.attach(trace, interval=log_every)
        t0 = time.perf_counter()
        dyn.run(n)
        keep = n // log_every  # ASE also calls the observer before the first step: not traced
        cvs, temps = cvs[len(cvs) - keep:], temps[len(temps) - keep:]
        state = {"steps": np.array(done + n), "positions": atoms.get_positions(),
                 "momenta": atoms.get_momenta(),
                 "cvs": np.concatenate([state["cvs"],
                                        np.asarray(cvs, dtype=float).reshape(-1, len(dihedrals))]),
                 "temperature": np.concatenate([state["temperature"], temps]),
                 "n_broken": np.array(int(state["n_broken"]) + broken),
                 "wall_s": np.array(float(state["wall_s"]) + time.perf_counter() - t0)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **state)
        tmp.replace(path)
    return reference_walker_summary(state)
