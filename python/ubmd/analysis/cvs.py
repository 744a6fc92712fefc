"""Collective variables (CVs) of structures and walker outputs.

Geometry (all angles in degrees, lengths in Å):

* :func:`cell_volume`, :func:`volume_per_fu` (Å^3 per formula unit), :func:`lattice_parameters`
  (a, b, c in Å; alpha, beta, gamma in degrees);
* :func:`distance`, :func:`angle`, :func:`dihedral` by atom indices, with minimum-image
  vectors along periodic directions; dihedrals in (-180, 180] with the IUPAC sign
  convention (same as ``ase.Atoms.get_dihedral`` mapped to that interval).

CV specifications (the CLI's ``--cv``), parsed by :func:`parse_cv`:

``volume``, ``volume_per_fu``, ``a`` ``b`` ``c`` ``alpha`` ``beta`` ``gamma``,
``distance:i,j``, ``angle:i,j,k``, ``dihedral:i,j,k,l`` (0-based atom indices),
``log:COLUMN`` (a thermo column such as ``log:Volume`` or ``log:c_u``),
``col:NAME[:REDUCE]`` (a per-frame value or a per-atom column of a dump/extxyz, e.g.
``col:c_uat:max``; REDUCE is one of max, mean, min, sum, default max).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MissingKeyError

LATTICE_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")
REDUCTIONS = {"max": np.max, "mean": np.mean, "min": np.min, "sum": np.sum}


def cell_volume(cell) -> float:
    """|det(cell)| in Å^3; ``cell`` rows are lattice vectors (Å)."""
    return float(abs(np.linalg.det(np.asarray(cell, dtype=float).reshape(3, 3))))


def n_formula_units(n_atoms: int, atoms_per_fu: int) -> int:
    """How many formula units of ``atoms_per_fu`` atoms ``n_atoms`` atoms are (ValueError unless a
    positive whole number)."""
    if atoms_per_fu <= 0 or n_atoms <= 0 or n_atoms % atoms_per_fu:
        raise ValueError(
            f"{n_atoms} atoms is not a whole number of formula units of {atoms_per_fu} atoms"
        )
    return n_atoms // atoms_per_fu


def volume_per_fu(cell, n_atoms: int, atoms_per_fu: int | None = None, n_fu: int | None = None) -> float:
    """Cell volume per formula unit (Å^3); give ``atoms_per_fu`` or ``n_fu`` (exactly one)."""
    if (atoms_per_fu is None) == (n_fu is None):
        raise ValueError("volume per formula unit needs exactly one of atoms_per_fu or n_fu")
    if atoms_per_fu is not None:
        n_fu = n_formula_units(n_atoms, atoms_per_fu)
    if n_fu <= 0:
        raise ValueError(f"number of formula units must be positive, got {n_fu}")
    return cell_volume(cell) / n_fu


def lattice_parameters(cell) -> dict[str, float]:
    """a, b, c (Å) and alpha, beta, gamma (degrees) of the cell with lattice-vector rows."""
    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    lengths = np.linalg.norm(cell, axis=1)

    def _angle(u, v):
        cos = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
        return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))

    return {
        "a": float(lengths[0]),
        "b": float(lengths[1]),
        "c": float(lengths[2]),
        "alpha": _angle(cell[1], cell[2]),
        "beta": _angle(cell[0], cell[2]),
        "gamma": _angle(cell[0], cell[1]),
    }


def minimum_image(vectors, cell=None, pbc=None) -> np.ndarray:
    """Minimum-image versions of displacement ``vectors`` [..., 3] (Å).

    Periodic directions are wrapped to fractional coordinates in [-0.5, 0.5), followed by a
    search over neighbouring images so that skewed cells also give the shortest vector.
    """
    vectors = np.asarray(vectors, dtype=float)
    if cell is None or pbc is None or not np.any(pbc):
        return vectors
    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    flat = vectors.reshape(-1, 3)
    frac = np.linalg.solve(cell.T, flat.T).T
    frac[:, pbc] -= np.floor(frac[:, pbc] + 0.5)
    wrapped = frac @ cell
    shifts = np.array(np.meshgrid(*[[-1, 0, 1] if p else [0] for p in pbc], indexing="ij")).reshape(3, -1).T
    candidates = wrapped[:, None, :] + (shifts @ cell)[None, :, :]
    best = np.argmin(np.einsum("ijk,ijk->ij", candidates, candidates), axis=1)
    return candidates[np.arange(len(flat)), best].reshape(vectors.shape)


def distance(positions, i: int, j: int, cell=None, pbc=None) -> float:
    """Distance between atoms i and j (Å), minimum image along periodic directions."""
    positions = np.asarray(positions, dtype=float)
    return float(np.linalg.norm(minimum_image(positions[j] - positions[i], cell, pbc)))


def angle(positions, i: int, j: int, k: int, cell=None, pbc=None) -> float:
    """Angle i-j-k at atom j in degrees, in [0, 180]."""
    positions = np.asarray(positions, dtype=float)
    u = minimum_image(positions[i] - positions[j], cell, pbc)
    v = minimum_image(positions[k] - positions[j], cell, pbc)
    cos = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def dihedral(positions, i: int, j: int, k: int, l: int, cell=None, pbc=None) -> float:
    """Dihedral i-j-k-l in degrees, in (-180, 180] (IUPAC sign: clockwise looking along j->k is +)."""
    positions = np.asarray(positions, dtype=float)
    b0 = minimum_image(positions[j] - positions[i], cell, pbc)
    b1 = minimum_image(positions[k] - positions[j], cell, pbc)
    b2 = minimum_image(positions[l] - positions[k], cell, pbc)
    n1 = np.cross(b0, b1)
    n2 = np.cross(b1, b2)
    if np.linalg.norm(n1) < 1e-12 or np.linalg.norm(n2) < 1e-12:
        raise ValueError(f"dihedral {i},{j},{k},{l} undefined: three of its atoms are collinear")
    # Blondel & Karplus (1996): atan2(|b1| b0 . (b1 x b2), (b0 x b1) . (b1 x b2))
    value = float(np.degrees(np.arctan2(np.linalg.norm(b1) * np.dot(b0, n2), np.dot(n1, n2))))
    return 180.0 if value <= -180.0 else value


@dataclass(frozen=True)
class CV:
    """A parsed CV specification; see the module docstring for the syntax."""

    kind: str  # volume, volume_per_fu, lattice, distance, angle, dihedral, log, col
    spec: str
    indices: tuple[int, ...] = ()
    name: str = ""  # lattice parameter, log column, extra column or name of an index CV
    reduce: str = "max"

    @property
    def source(self) -> str:
        """``"log"`` for thermo columns, ``"frames"`` for everything read from structures."""
        return "log" if self.kind == "log" else "frames"

    @property
    def periodic(self) -> bool:
        return self.kind == "dihedral"

    @property
    def unit(self) -> str | None:
        """The unit of the CV's values (None where unknown: an unknown log column, a dump
        column); LAMMPS thermo columns in ``units metal``, walker traces in ubmd's units."""
        if self.kind in ("volume", "volume_per_fu"):
            return "Å$^3$"
        if self.kind == "lattice":
            return "Å" if self.name in "abc" else "deg"
        if self.kind in ("distance", "angle", "dihedral"):
            return {"distance": "Å", "angle": "deg", "dihedral": "deg"}[self.kind]
        if self.kind == "log":
            return column_unit(self.name)
        return None

    @property
    def label(self) -> str:
        """Axis label with units."""
        unit = self.unit
        tail = f" ({unit})" if unit else ""
        if self.kind == "volume":
            return "volume" + tail
        if self.kind == "volume_per_fu":
            return "volume per formula unit" + tail
        if self.kind == "lattice":
            return self.name + tail
        if self.kind in ("distance", "angle", "dihedral"):
            named = f"{self.name} = " if self.name else ""
            return f"{named}{self.kind} {','.join(map(str, self.indices))}{tail}"
        if self.kind == "log":
            return LOG_NAMES.get(self.name.lower(), self.name) + tail
        return f"{self.reduce} {self.name}" if self.reduce else self.name

    @property
    def default_range(self) -> tuple[float, float] | None:
        return (-180.0, 180.0) if self.kind == "dihedral" else None


_N_INDICES = {"distance": 2, "angle": 3, "dihedral": 4}

#: units of the columns of LAMMPS logs (``units metal``) and of walker traces (``trace.npz``),
#: by lower-case name
LOG_UNITS = {
    "step": None, "time": "ps", "time_fs": "fs", "temp": "K", "temperature": "K",
    "press": "bar", "pe": "eV", "poteng": "eV", "ke": "eV", "kineng": "eV", "etotal": "eV",
    "toteng": "eV", "vol": "Å$^3$", "volume": "Å$^3$", "lx": "Å", "ly": "Å", "lz": "Å",
    "density": "g/cm$^3$", "energy": "eV", "bias_energy": "eV", "uncertainty": "eV/atom",
    "max_atomic_uncertainty": "eV/Å", "c_umax": "eV/Å", "c_ubmd[1]": "eV/atom",
    "c_ubmd[2]": "eV", "c_ubmd[5]": "eV/Å",
}
#: readable names of those columns (axis labels)
LOG_NAMES = {
    "temp": "temperature", "press": "pressure", "pe": "potential energy",
    "poteng": "potential energy", "ke": "kinetic energy", "kineng": "kinetic energy",
    "etotal": "total energy", "toteng": "total energy", "vol": "volume",
    "max_atomic_uncertainty": "max atomic uncertainty", "bias_energy": "bias energy",
    "c_umax": "max atomic uncertainty", "c_ubmd[1]": "uncertainty u",
    "c_ubmd[2]": "bias energy", "c_ubmd[5]": "max atomic uncertainty",
}


def column_unit(name: str) -> str | None:
    """The unit of a log or trace column (``cvs[k]``: the campaign's dihedrals, deg)."""
    low = name.lower()
    if low.startswith("cvs["):
        return "deg"
    return LOG_UNITS.get(low)


def load_named_cvs(path) -> dict[str, tuple[int, ...]]:
    """Named atom-index CVs from a JSON file: ``{"phi": [1, 3, 4, 6], ...}`` or
    ``{"phi": {"indices": [...]}, ...}`` (the layout of ``benchmarks/data/ala2/dihedrals.json``
    in the repository).

    Entries with 2, 3 or 4 integer indices become distances, angles or dihedrals; others are
    ignored.
    """
    import json
    from pathlib import Path

    table = json.loads(Path(path).read_text())
    named = {}
    for key, value in table.items():
        if isinstance(value, dict):
            value = value.get("indices")
        if (isinstance(value, list) and len(value) in (2, 3, 4)
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            named[str(key)] = tuple(value)
    if not named:
        raise ValueError(f"{path}: no named atom-index CVs (lists of 2-4 integers) found")
    return named


def parse_cv(spec: str, named: dict | None = None) -> CV:
    """Parse a CV specification string (see the module docstring); raises ``ValueError``.

    ``named`` maps names to 2/3/4 atom indices (see :func:`load_named_cvs`), so ``phi`` can
    stand for ``dihedral:1,3,4,6``.
    """
    text = spec.strip()
    if named and text in named:
        indices = tuple(int(v) for v in named[text])
        kind = {2: "distance", 3: "angle", 4: "dihedral"}[len(indices)]
        return CV(kind, text, indices=indices, name=text)
    head, _, rest = text.partition(":")
    head = head.lower()
    if head in ("volume", "vol") and not rest:
        return CV("volume", text)
    if head in ("volume_per_fu", "vol_per_fu") and not rest:
        return CV("volume_per_fu", text)
    if head in LATTICE_NAMES and not rest:
        return CV("lattice", text, name=head)
    if head in _N_INDICES:
        try:
            indices = tuple(int(v) for v in rest.split(","))
        except ValueError:
            indices = ()
        if len(indices) != _N_INDICES[head] or min(indices) < 0:
            raise ValueError(
                f"CV {spec!r}: {head} needs {_N_INDICES[head]} comma-separated non-negative atom "
                f"indices, e.g. {head}:{','.join(str(n) for n in range(_N_INDICES[head]))}"
            )
        return CV(head, text, indices=indices)
    if head == "log" and rest:
        return CV("log", text, name=rest)
    if head in ("col", "info") and rest:
        name, _, reduce = rest.partition(":")
        reduce = reduce or "max"
        if reduce not in REDUCTIONS:
            raise ValueError(f"CV {spec!r}: reduction {reduce!r} not one of {', '.join(REDUCTIONS)}")
        return CV("col", text, name=name, reduce=reduce)
    raise ValueError(
        f"unknown CV {spec!r}; use volume, volume_per_fu, a|b|c|alpha|beta|gamma, distance:i,j, "
        "angle:i,j,k, dihedral:i,j,k,l, log:COLUMN or col:NAME[:max|mean|min|sum]"
        + (f", or a name from --cv-names ({', '.join(named)})" if named else "")
    )


def evaluate_frames(
    cv: CV, frames, extras=None, atoms_per_fu: int | None = None, n_fu: int | None = None
) -> np.ndarray:
    """Values of ``cv`` for every frame (``frames``: ase.Atoms list; ``extras`` from read_frames)."""
    if cv.source != "frames":
        raise ValueError(f"CV {cv.spec!r} is a thermo-log column; evaluate it on a LAMMPS log")
    out = np.empty(len(frames))
    for n, atoms in enumerate(frames):
        if cv.kind in ("volume", "volume_per_fu", "lattice") and atoms.cell.rank < 3:
            raise ValueError(f"CV {cv.spec!r} needs a 3-D cell; frame {n} has none")
        if cv.kind == "volume":
            out[n] = cell_volume(atoms.cell)
        elif cv.kind == "volume_per_fu":
            out[n] = volume_per_fu(atoms.cell, len(atoms), atoms_per_fu, n_fu)
        elif cv.kind == "lattice":
            out[n] = lattice_parameters(atoms.cell)[cv.name]
        elif cv.kind in _N_INDICES:
            if max(cv.indices) >= len(atoms):
                raise ValueError(f"CV {cv.spec!r}: atom index out of range for {len(atoms)} atoms")
            func = {"distance": distance, "angle": angle, "dihedral": dihedral}[cv.kind]
            cell = atoms.cell.array if atoms.cell.rank == 3 else None
            out[n] = func(atoms.positions, *cv.indices, cell=cell, pbc=atoms.pbc)
        else:
            extra = {} if extras is None else extras[n]
            if cv.name not in extra:
                raise MissingKeyError(
                    f"CV {cv.spec!r}: frame {n} has no value {cv.name!r}; available: "
                    f"{', '.join(map(str, extra)) or 'none'}"
                )
            try:
                value = np.asarray(extra[cv.name], dtype=float)
            except ValueError:
                raise ValueError(f"CV {cv.spec!r}: {cv.name!r} is not numeric") from None
            out[n] = float(value) if value.ndim == 0 else float(REDUCTIONS[cv.reduce](value))
    return out
