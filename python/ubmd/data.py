"""Structures in and out (extxyz via ASE), graphs, datasets, batching and splits.

A *graph* is a dict of tensors for one structure (keys in :mod:`ubmd.keys`); a *batch* is several
graphs concatenated, with ``batch[n]`` the structure index of atom n and edges offset accordingly.
Labels: energy (eV), forces (eV/Å), stress (eV/Å^3, ASE sign), virial (eV) = -V * stress.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.io import read, write

from . import keys as K
from .neighbours import neighbour_list


def read_structures(path: str | Path, index: str = ":") -> list[Atoms]:
    """Read structures (extxyz, traj, anything ASE reads) with their labels."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"structure file not found: {path}")
    frames = read(str(path), index=index)
    return frames if isinstance(frames, list) else [frames]


def write_structures(path: str | Path, frames: Sequence[Atoms], append: bool = False) -> None:
    """Write structures as extxyz (labels from attached calculators or arrays/info are kept)."""
    write(str(path), list(frames), format="extxyz", append=append)


def get_labels(atoms: Atoms) -> dict:
    """Energy/forces/stress of a structure from its calculator or info/arrays (None if absent)."""
    out = {"energy": None, "forces": None, "stress": None}
    calc = atoms.calc
    if calc is not None:
        res = getattr(calc, "results", {})
        out["energy"] = res.get("energy", res.get("free_energy"))
        out["forces"] = res.get("forces")
        out["stress"] = res.get("stress")
    for key, alt in (("energy", "REF_energy"), ("forces", "REF_forces"), ("stress", "REF_stress")):
        if out[key] is None:
            src = atoms.arrays if key == "forces" else atoms.info
            out[key] = src.get(key, src.get(alt))
    if out["stress"] is not None:
        s = np.asarray(out["stress"], dtype=float)
        if s.shape == (6,):  # Voigt xx yy zz yz xz xy
            xx, yy, zz, yz, xz, xy = s
            s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        out["stress"] = s.reshape(3, 3)
    if out["energy"] is not None:
        out["energy"] = float(out["energy"])
    return out


def atoms_to_graph(
    atoms: Atoms, cutoff: float, species_map: dict[int, int], dtype=torch.float64
) -> dict[str, torch.Tensor]:
    """One structure -> graph dict (edges within ``cutoff``, species mapped by atomic number)."""
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
    lab = get_labels(atoms)
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
    for key in (K.ENERGY, K.FORCES):
        if all(key in g for g in graphs):
            out[key] = torch.cat([g[key] for g in graphs])
    if any(K.VIRIAL in g for g in graphs):
        ref = graphs[0][K.POSITIONS]
        vir = torch.zeros(len(graphs), 3, 3, dtype=ref.dtype)
        mask = torch.zeros(len(graphs), dtype=torch.bool)
        for b, g in enumerate(graphs):
            if K.VIRIAL in g:
                vir[b] = g[K.VIRIAL][0]
                mask[b] = True
        out[K.VIRIAL] = vir
        out["virial_mask"] = mask
    return out


@dataclass
class Split:
    train: list[int]
    valid: list[int]
    test: list[int]


def split_indices(n: int, n_valid: int | float, n_test: int | float = 0, seed: int = 0) -> Split:
    """Random train/validation/test split (fractions < 1 or counts), reproducible with ``seed``."""
    def count(x):
        return int(round(x * n)) if isinstance(x, float) and x < 1 else int(x)

    nv, nt = count(n_valid), count(n_test)
    if nv + nt >= n:
        raise ValueError(f"split leaves no training data: n={n}, n_valid={nv}, n_test={nt}")
    perm = np.random.default_rng(seed).permutation(n).tolist()
    return Split(train=sorted(perm[nv + nt :]), valid=sorted(perm[:nv]), test=sorted(perm[nv : nv + nt]))


class GraphDataset:
    """Structures with their graphs precomputed once (neighbour lists built at construction)."""

    def __init__(self, frames: Sequence[Atoms], cutoff: float, species_map: dict[int, int],
                 dtype=torch.float64):
        self.frames = list(frames)
        self.cutoff = float(cutoff)
        self.species_map = dict(species_map)
        self.dtype = dtype
        self.graphs = [atoms_to_graph(a, cutoff, species_map, dtype) for a in self.frames]

    def __len__(self) -> int:
        return len(self.graphs)

    def _derived(self, frames: list, graphs: list) -> "GraphDataset":
        new = GraphDataset.__new__(GraphDataset)
        new.frames, new.graphs = frames, graphs
        new.cutoff, new.species_map, new.dtype = self.cutoff, self.species_map, self.dtype
        return new

    def subset(self, idx: Sequence[int]) -> "GraphDataset":
        return self._derived([self.frames[i] for i in idx], [self.graphs[i] for i in idx])

    def without_frames(self) -> "GraphDataset":
        """The same graphs without the ASE frames (and their calculators): what training needs,
        cheap to pickle to another process."""
        return self._derived([], self.graphs)

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
