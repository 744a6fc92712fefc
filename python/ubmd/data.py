"""Structures in and out (extxyz via ASE), graphs, datasets, batching and splits.

A *graph* is a dict of tensors for one structure (keys in :mod:`ubmd.keys`); a *batch* is several
graphs concatenated, with ``batch[n]`` the structure index of atom n and edges offset accordingly.
Labels: energy (eV), forces (eV/Å), stress (eV/Å^3, ASE sign), virial (eV) = -V * stress, each
optional per structure: a batch carries a label when any of its structures has it, with a mask
(``K.ENERGY_MASK``, ``K.FORCES_MASK`` per atom, ``K.VIRIAL_MASK``) of the structures/atoms that do.
"""

from __future__ import annotations

import contextlib
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
    """Read structures (extxyz, traj, anything ASE reads) with their labels. A single negative
    ``index`` past the start (``-4`` of 3 frames) is an error, as in Python (ASE's extxyz reader
    returns the first frame)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"structure file not found: {path}")
    single = str(index).strip()
    negative = single.lstrip("-").isdigit() and single.startswith("-")
    try:
        # a negative index as the slice "-k:" (the last k frames: cheap, and its length tells
        # whether frame -k exists)
        frames = read(str(path), index=f"{single}:" if negative else index)
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds (empty, unknown, malformed)
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise ValueError(f"cannot read structures from {path} ({type(exc).__name__}: {text}); "
                         "give an extxyz, ASE trajectory/database or another file ASE reads "
                         "(ase.io.read)") from exc
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise ValueError(f"{path} holds no structures")
    if negative:
        if -int(single) > len(frames):  # the slice was clamped to the whole file
            raise ValueError(f"index {single} selects no frame of {path} ({len(frames)} "
                             f"frame{'s' if len(frames) != 1 else ''}: -{len(frames)}..-1 from "
                             "the end)")
        frames = [frames[0]]
    bad = [k for k, a in enumerate(frames) if not isinstance(a, Atoms)]
    if bad:
        raise ValueError(f"{path}: entry {bad[0]} is not a structure ({type(frames[bad[0]]).__name__})")
    return frames


def write_structures(path: str | Path, frames: Sequence[Atoms], append: bool = False) -> None:
    """Write structures as extxyz (labels from attached calculators or arrays/info are kept)."""
    write(str(path), list(frames), format="extxyz", append=append)


# Label key names (``get_labels`` keyword arguments) and their defaults. With a default name the
# ASE calculator results and the ``REF_*`` variant (``REF_energy`` ...) are looked at as well; an
# explicitly requested other name is the only one used (so ``energy_key="REF_energy"`` ignores
# an ``energy`` that is also in the file).
LABEL_KEYS = {"energy_key": "energy", "forces_key": "forces", "stress_key": "stress",
              "virial_key": "virial"}
_FALLBACKS = {"energy": ("energy", "free_energy", "REF_energy"), "forces": ("forces", "REF_forces"),
              "stress": ("stress", "REF_stress"), "virial": ("virial", "REF_virial")}


def _find_label(atoms: Atoms, key: str, default: str, per_atom: bool):
    """The value stored under ``key`` (calculator results, then ``atoms.info``, or ``atoms.arrays``
    for per-atom labels); with the default key also under its fallback names. None if absent."""
    names = _FALLBACKS[default] if key == default else (key,)
    results = getattr(atoms.calc, "results", None) or {}
    src = atoms.arrays if per_atom else atoms.info
    for name in names:
        for d in (results, src):
            if d.get(name) is not None:
                return d[name]
    return None


def _tensor3x3(value, what: str) -> np.ndarray:
    """A 3x3 tensor from 9 values, a 3x3 array or Voigt (xx yy zz yz xz xy)."""
    s = np.asarray(value, dtype=float)
    if s.size == 6:
        xx, yy, zz, yz, xz, xy = s.ravel()
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if s.size == 9:
        return s.reshape(3, 3)
    raise ValueError(f"{what} must have 6 (Voigt) or 9 values, got shape {s.shape}")


def get_labels(atoms: Atoms, energy_key: str = "energy", forces_key: str = "forces",
               stress_key: str = "stress", virial_key: str = "virial") -> dict:
    """Energy (eV), forces (eV/Å, [N, 3]) and stress (3x3, eV/Å^3, ASE sign) of a structure, None
    where absent, from the calculator results or ``info``/``arrays`` under the given key names.

    Stress: under ``stress_key``; else from a virial under ``virial_key`` (GAP/MACE convention,
    virial = -stress * volume in eV, which is also this package's ``K.VIRIAL``), converted as
    stress = -virial / volume (periodic cells only). When both are present the explicitly requested
    (non-default) key wins, else the stress. 6 (Voigt xx yy zz yz xz xy) or 9 values, or 3x3."""
    out = {"energy": _find_label(atoms, energy_key, "energy", False),
           "forces": _find_label(atoms, forces_key, "forces", True), "stress": None}
    stress = _find_label(atoms, stress_key, "stress", False)
    virial = _find_label(atoms, virial_key, "virial", False)
    stress_from = f"stress {stress_key!r}"
    if virial is not None and (stress is None or (virial_key != LABEL_KEYS["virial_key"]
                                                  and stress_key == LABEL_KEYS["stress_key"])):
        stress_from = f"virial {virial_key!r}"
        vol = abs(float(np.linalg.det(np.asarray(atoms.get_cell()))))
        stress = -_tensor3x3(virial, f"virial {virial_key!r}") / vol if (
            atoms.pbc.all() and vol > 1e-12) else None
    if stress is not None:
        out["stress"] = _tensor3x3(stress, f"stress {stress_key!r}")
    if out["energy"] is not None:
        out["energy"] = float(np.asarray(out["energy"], dtype=float).reshape(-1)[0])
    if out["forces"] is not None:
        f = np.asarray(out["forces"], dtype=float)
        if f.shape != (len(atoms), 3):
            raise ValueError(f"forces {forces_key!r} of a structure of {len(atoms)} atoms have "
                             f"shape {f.shape}, expected ({len(atoms)}, 3)")
        out["forces"] = f
    # (the stress of a structure that is not periodic in x, y and z is never used: not checked)
    _check_finite({**out, "stress": out["stress"] if atoms.pbc.all() else None},
                  {"energy": f"energy {energy_key!r}", "forces": f"forces {forces_key!r}",
                   "stress": stress_from})
    return out


def _check_finite(labels: dict, keys: dict) -> None:
    """A NaN or inf label is an error naming it (not a NaN loss, or a NaN error metric, later)."""
    for name, value in labels.items():
        if value is None:
            continue
        v = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(v)):
            where = ""
            if name == "forces":
                bad = np.where(~np.isfinite(v).all(axis=1))[0]
                where = f" for atoms {bad[:10].tolist()}"
            raise ValueError(f"non-finite (NaN or inf) label {keys[name]}{where}: fix or drop "
                             "the structure (a structure without the label is left out of it)")


@contextlib.contextmanager
def naming_structure(k: int, atoms: Atoms):
    """Within the block, a ValueError is re-raised with ``structure k (formula): `` in front (k:
    0-based index in the data set or file), so the user knows which structure to fix."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"structure {k} ({atoms.get_chemical_formula()}): {exc}") from exc


def frame_labels(frames: Sequence[Atoms], label_keys: dict | None = None) -> list[dict]:
    """:func:`get_labels` of every frame; an error names the structure (0-based index)."""
    out = []
    for k, atoms in enumerate(frames):
        with naming_structure(k, atoms):
            out.append(get_labels(atoms, **(label_keys or {})))
    return out


def with_standard_labels(atoms: Atoms, label_keys: dict | None = None) -> Atoms:
    """A copy whose labels (read under ``label_keys``) sit in a single-point calculator under the
    standard names (energy, forces, stress in Voigt form): what the AL data sets hold, so that
    user data with other key names and the campaign's own labels are read the same way."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.stress import full_3x3_to_voigt_6_stress

    lab = get_labels(atoms, **(label_keys or {}))
    out = atoms.copy()
    for key in [k for k in (label_keys or {}).values() if k]:
        out.info.pop(key, None)
        if key in out.arrays and key not in ("numbers", "positions"):
            del out.arrays[key]
    stress = None if lab["stress"] is None else full_3x3_to_voigt_6_stress(lab["stress"])
    out.calc = SinglePointCalculator(out, energy=lab["energy"], forces=lab["forces"], stress=stress)
    return out


def describe_keys(frames: Sequence[Atoms], n: int = 3) -> str:
    """The info, per-atom array and calculator-result keys of the first ``n`` frames (for errors)."""
    info, arrays, results = set(), set(), set()
    for a in list(frames)[:n]:
        info |= set(a.info)
        arrays |= set(a.arrays) - {"numbers", "positions"}
        results |= set(getattr(a.calc, "results", None) or {})
    return (f"info keys {sorted(info)}, per-atom array keys {sorted(arrays)}, "
            f"calculator results {sorted(results)}")


def no_labels_message(frames: Sequence[Atoms], label_keys: dict | None = None) -> str:
    """Why a data set with no energy and no forces label is refused, with the keys it has."""
    k = {**LABEL_KEYS, **(label_keys or {})}
    return (f"no structure has an energy or forces label under energy_key={k['energy_key']!r}, "
            f"forces_key={k['forces_key']!r} (default keys also look at the calculator results and "
            f"REF_energy / REF_forces); the first frames have {describe_keys(frames)}: set the "
            "label key names to the ones used in the file")


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

    def _derived(self, frames: list, graphs: list) -> "GraphDataset":
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
