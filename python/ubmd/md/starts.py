"""Start structures of MD runs: clean copies, and the checks that an MD run can start from them."""

from __future__ import annotations

from typing import Sequence

from ase import Atoms


def clean_copy(atoms: Atoms) -> Atoms:
    """Positions, numbers, cell and pbc only (no calculator, labels, velocities or charges)."""
    return Atoms(numbers=atoms.get_atomic_numbers(), positions=atoms.get_positions(),
                 cell=atoms.get_cell(), pbc=atoms.get_pbc())


def check_walker_starts(starts: Sequence[Atoms], ensemble: str,
                        source: str = "start structures", option: str = "ensemble") -> None:
    """Start structures the walkers can run MD from: at least 2 atoms (one atom has no thermal
    degrees of freedom once the net momentum is removed: NaN velocities) and, for NPT, periodic
    in x, y and z. Checked before round 0 labels anything."""
    for k, atoms in enumerate(starts):
        name = f"{source}: structure {k} ({atoms.get_chemical_formula()})"
        if len(atoms) < 2:
            raise ValueError(f"{name} has {len(atoms)} atom: MD needs at least 2 atoms (the net "
                             "momentum is removed); repeat the cell, e.g. atoms.repeat((2, 2, 2))")
        if ensemble == "npt" and not atoms.pbc.all():
            raise ValueError(f"{name} has pbc {atoms.pbc.tolist()}: {option} npt needs "
                             "structures periodic in x, y and z (use nvt for molecules and slabs)")
