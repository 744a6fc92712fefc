"""Graphs, batches, data sets and splits.

A *graph* is a dict of tensors for one structure (keys in :mod:`ubmd.keys`); a *batch* is several
graphs concatenated, with ``batch[n]`` the structure index of atom n and edges offset accordingly.
Labels: energy (eV), forces (eV/Å), stress (eV/Å^3, ASE sign), virial (eV) = -V * stress, each
optional per structure: a batch carries a label when any of its structures has it, with a mask
(``K.ENERGY_MASK``, ``K.FORCES_MASK`` per atom, ``K.VIRIAL_MASK``) of the structures/atoms that do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from ase import Atoms

from .. import keys as K
from ..neighbours import neighbour_list
from .labels import get_labels, naming_structure, no_labels_message


def atoms_to_graph(
    atoms: Atoms, cutoff: float, species_map: dict[int, int], dtype=torch.float64,
    label_keys: dict | None = None,
) -> dict[str, torch.Tensor]:
    """One structure -> graph dict (edges within ``cutoff``, species mapped by atomic number).

    ``label_keys``: keyword arguments of :func:`get_labels` (energy_key, forces_key, stress_key,
    virial_key); the defaults where absent."""
    numbers = atoms.get_atomic_numbers()
    missing = sorted({int(z) for z in numbers if int(z) not in species_map})
    if missing:
        from ase.data import chemical_symbols

        raise ValueError(
            "elements not in the model: "
            + ", ".join(chemical_symbols[z] for z in missing)
            + f"; the model knows {[chemical_symbols[z] for z in species_map]}"
        )
    pos = atoms.get_positions()
    cell = np.asarray(atoms.get_cell())
    pbc = atoms.get_pbc()
    i, j, s = neighbour_list(pos, cell, pbc, cutoff)
    g = {
        K.POSITIONS: torch.tensor(pos, dtype=dtype),
        K.ATOMIC_NUMBERS: torch.tensor(numbers, dtype=torch.long),
        K.SPECIES: torch.tensor([species_map[int(z)] for z in numbers], dtype=torch.long),
        K.EDGE_INDEX: torch.tensor(np.stack([i, j]), dtype=torch.long),
        K.SHIFTS: torch.tensor(s, dtype=dtype),
        K.CELL: torch.tensor(cell, dtype=dtype).unsqueeze(0),
        K.PBC: torch.tensor(pbc, dtype=torch.bool).unsqueeze(0),
        K.N_ATOMS: torch.tensor([len(atoms)], dtype=torch.long),
    }
    lab = get_labels(atoms, **(label_keys or {}))
    if lab["energy"] is not None:
        g[K.ENERGY] = torch.tensor([lab["energy"]], dtype=dtype)
    if lab["forces"] is not None:
        g[K.FORCES] = torch.tensor(np.asarray(lab["forces"]), dtype=dtype)
    if lab["stress"] is not None and pbc.all():
        vol = abs(np.linalg.det(cell))
        g[K.STRESS] = torch.tensor(lab["stress"], dtype=dtype).unsqueeze(0)
        g[K.VIRIAL] = -vol * g[K.STRESS]
    return g


def collate(graphs: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate graphs into one batch (edge indices offset, ``batch`` vector added)."""
    out: dict[str, torch.Tensor] = {}
    offsets = np.cumsum([0] + [int(g[K.N_ATOMS][0]) for g in graphs])
    out[K.EDGE_INDEX] = torch.cat([g[K.EDGE_INDEX] + int(o) for g, o in zip(graphs, offsets)], dim=1)
    out[K.BATCH] = torch.cat(
        [torch.full((int(g[K.N_ATOMS][0]),), b, dtype=torch.long) for b, g in enumerate(graphs)]
    )
    for key in (K.POSITIONS, K.ATOMIC_NUMBERS, K.SPECIES, K.SHIFTS, K.CELL, K.PBC, K.N_ATOMS):
        out[key] = torch.cat([g[key] for g in graphs])
    # a label is in the batch when any structure has it, zero-filled where absent, with its mask
    # (per structure for energy and virial, per atom for forces)
    for key, mask_key, rows in ((K.ENERGY, K.ENERGY_MASK, lambda g: 1),
                                (K.FORCES, K.FORCES_MASK, lambda g: int(g[K.N_ATOMS][0])),
                                (K.VIRIAL, K.VIRIAL_MASK, lambda g: 1)):
        have = [g for g in graphs if key in g]
        if not have:
            continue
        like = have[0][key]
        out[key] = torch.cat([g[key] if key in g else like.new_zeros((rows(g),) + like.shape[1:])
                              for g in graphs])
        out[mask_key] = torch.cat([torch.full((rows(g),), key in g, dtype=torch.bool)
                                   for g in graphs])
    return out


@dataclass
class Split:
    train: list[int]
    valid: list[int]
    test: list[int]


def split_indices(n: int, n_valid: int | float, n_test: int | float = 0, seed: int = 0) -> Split:
    """Random train/validation/test split (fractions < 1 or counts), reproducible with ``seed``.

    A validation fraction > 0 gives at least one validation structure when that leaves at least
    one for training (n >= 2): rounding never empties the split that early stopping and the
    uncertainty calibration use (e.g. 0.1 of 3 frames gives 1, not 0)."""
    def count(x):
        return int(round(x * n)) if isinstance(x, float) and x < 1 else int(x)

    nv, nt = count(n_valid), count(n_test)
    if nv == 0 and isinstance(n_valid, float) and 0 < n_valid < 1 and nt + 1 < n:
        nv = 1
    if nv + nt >= n:
        raise ValueError(f"split leaves no training data: n={n}, n_valid={nv}, n_test={nt}")
    perm = np.random.default_rng(seed).permutation(n).tolist()
    return Split(train=sorted(perm[nv + nt :]), valid=sorted(perm[:nv]), test=sorted(perm[nv : nv + nt]))


class GraphDataset:
    """Structures with their graphs precomputed once (neighbour lists built at construction)."""

    def __init__(self, frames: Sequence[Atoms], cutoff: float, species_map: dict[int, int],
                 dtype=torch.float64, label_keys: dict | None = None):
        self.frames = list(frames)
        self.cutoff = float(cutoff)
        self.species_map = dict(species_map)
        self.dtype = dtype
        self.label_keys = dict(label_keys or {})  # get_labels keyword arguments
        self.graphs = []
        for k, a in enumerate(self.frames):
            with naming_structure(k, a):
                self.graphs.append(atoms_to_graph(a, cutoff, species_map, dtype, self.label_keys))

    def __len__(self) -> int:
        return len(self.graphs)

    def derived(self, frames: list, graphs: list) -> "GraphDataset":
        """A data set with this one's settings (cutoff, species, dtype, label keys) holding the
        given frames and graphs (graphs already built, e.g. with transformed labels)."""
        new = GraphDataset.__new__(GraphDataset)
        new.frames, new.graphs = frames, graphs
        new.cutoff, new.species_map, new.dtype = self.cutoff, self.species_map, self.dtype
        new.label_keys = getattr(self, "label_keys", {})
        return new

    def has_labels(self) -> bool:
        """Whether any structure has an energy or a forces label."""
        return any(K.ENERGY in g or K.FORCES in g for g in self.graphs)

    def require_labels(self) -> None:
        """Raise a ValueError naming the keys found when no structure has energy or forces."""
        if not self.has_labels():
            raise ValueError(no_labels_message(self.frames, getattr(self, "label_keys", {})))

    def subset(self, idx: Sequence[int]) -> "GraphDataset":
        return self.derived([self.frames[i] for i in idx], [self.graphs[i] for i in idx])

    def without_frames(self) -> "GraphDataset":
        """The same graphs without the ASE frames (and their calculators): what training needs,
        cheap to pickle to another process."""
        return self.derived([], self.graphs)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int | None = None
                ) -> Iterator[dict[str, torch.Tensor]]:
        order = np.arange(len(self))
        if shuffle:
            np.random.default_rng(seed).shuffle(order)
        for start in range(0, len(order), batch_size):
            yield collate([self.graphs[i] for i in order[start : start + batch_size]])


def species_map_from(frames: Sequence[Atoms]) -> dict[int, int]:
    """Atomic number -> species index, sorted by atomic number."""
    zs = sorted({int(z) for a in frames for z in a.get_atomic_numbers()})
    return {z: k for k, z in enumerate(zs)}
