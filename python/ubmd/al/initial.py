"""Round-0 structures: the start structure(s) plus randomly perturbed copies (docs/method.md).

Every copy gets independent uniform random Cartesian shifts in [-d, d] Å (d = 0.02 Å by default);
cells periodic in all three directions are also deformed by a random symmetric strain eps with
components uniform in [-s, s] (s = 0.05), applied as cell' = cell (I + eps) with the atoms moved
affinely. Labels and calculators of the inputs are dropped.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from ..data import read_structure_files, read_structures
from ..md.starts import clean_copy


def perturbed_copies(atoms: Atoms, n: int, displacement: float = 0.02, strain: float = 0.05,
                     rng: np.random.Generator | None = None) -> list[Atoms]:
    """``n`` perturbed copies of ``atoms`` (shifts in Å; strain only for fully periodic cells)."""
    if displacement < 0 or strain < 0:
        raise ValueError(f"displacement and strain must be >= 0, got {displacement}, {strain}")
    rng = np.random.default_rng() if rng is None else rng
    periodic = bool(np.all(atoms.get_pbc()))
    out = []
    for _ in range(int(n)):
        new = clean_copy(atoms)
        if periodic and strain > 0:
            eps = rng.uniform(-strain, strain, (3, 3))
            eps = 0.5 * (eps + eps.T)
            new.set_cell(np.asarray(new.get_cell()) @ (np.eye(3) + eps), scale_atoms=True)
        new.positions += rng.uniform(-displacement, displacement, (len(new), 3))
        out.append(new)
    return out


def initial_structures(starts: Sequence[Atoms], n_perturbed: int = 7, displacement: float = 0.02,
                       strain: float = 0.05, seed: int = 0) -> list[Atoms]:
    """Each start structure followed by its ``n_perturbed`` perturbed copies."""
    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    for k, atoms in enumerate(starts):
        group = [clean_copy(atoms)] + perturbed_copies(atoms, n_perturbed, displacement, strain, rng)
        for g in group:
            g.info["start_index"] = k
        out.extend(group)
    return out


def check_dihedrals(starts: Sequence[Atoms], dihedrals: dict | None) -> None:
    """Every start structure must hold the atoms the ``dihedrals`` name (checked before round 0
    labels anything: otherwise every walker fails after the first training)."""
    if not dihedrals:
        return
    need = max(max(v) for v in dihedrals.values()) + 1
    for k, atoms in enumerate(starts):
        if len(atoms) < need:
            bad = {name: v for name, v in dihedrals.items() if max(v) >= len(atoms)}
            raise ValueError(f"dihedrals {bad} name atom indices (0-based) beyond structure {k} of "
                             f"initial.structures ({atoms.get_chemical_formula()}, {len(atoms)} "
                             f"atoms, indices 0..{len(atoms) - 1}); give indices of atoms that "
                             "every start structure has, or drop dihedrals")


def read_start_frames(spec, index: str = ":") -> list[Atoms]:
    """``initial.structures`` frames ``initial.index`` of each file; an index that selects no frame
    of a file is an error naming the file and its frame count (ASE only says StopIteration)."""
    from .config import parse_index

    idx = parse_index(index)
    try:
        return read_structure_files(spec, index, what="initial.structures")
    except ValueError:
        for path in [spec] if isinstance(spec, str) else list(spec or []):
            n = len(read_structures(path))  # raises the reader's own error for a bad file
            chosen = range(n)[idx] if isinstance(idx, slice) else (
                [idx] if -n <= idx < n else [])
            if not len(chosen):
                raise ValueError(f"initial.index {index!r} selects no frame of {path} ({n} "
                                 f"frame{'s' if n != 1 else ''}: 0..{n - 1}, or -{n}..-1 from "
                                 "the end)") from None
        raise
