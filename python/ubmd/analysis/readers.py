"""Readers for walker outputs: LAMMPS thermo logs, LAMMPS dumps, extxyz and ASE ``.traj``.

* :func:`read_thermo_log` -- every thermo block of a LAMMPS log (all ``run`` commands
  concatenated), columns by the names LAMMPS prints (``Step``, ``Volume``, ``c_u`` ...). Built on
  ``lammps_logfile`` with two fixes: the ``Fix halt condition ...`` line that ``fix halt``
  prints *before* the last thermo row no longer cuts that row off, and the row that a new
  ``run`` repeats (same step as the end of the previous run) is dropped.
* :func:`read_loop_time` -- the ``Loop time of X on N procs for S steps`` line of one ``run``
  (the MD loop alone: no start-up, no model loading).
* :func:`read_dump_columns` -- a small parser of ``dump custom`` text files that keeps every
  per-atom column (``c_uat``, ``f_ID[2]`` ...) as a float array per frame, sorted by atom id
  (non-numeric columns such as ``element`` as string arrays).
* :func:`read_walker_trace` -- the ``trace.npz`` every AL walker writes (``step``, ``time_fs``,
  ``uncertainty``, ``max_atomic_uncertainty``, ``bias_energy``, ``energy``, ``temperature``,
  ``volume``, and ``cvs`` -- the campaign's dihedrals -- as ``cvs[1]``, ``cvs[2]`` ...), as a
  :class:`ThermoLog`, so the same ``log:NAME`` CVs read it.
* :func:`read_frames` -- a list of :class:`ase.Atoms` plus one dict of extra per-frame values
  for any structure file (dump, extxyz/xyz, ASE traj), picked by extension or content.

Units are whatever the file holds (LAMMPS ``units metal``: Å, eV, ps, bar).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MissingKeyError

#: LAMMPS ``thermo_style`` keywords whose printed header differs from the keyword.
THERMO_ALIASES = {
    "vol": "Volume",
    "pe": "PotEng",
    "ke": "KinEng",
    "etotal": "TotEng",
    "evdwl": "E_vdwl",
    "ecoul": "E_coul",
    "elong": "E_long",
    "cpu": "CPU",
    "dt": "Dt",
    "time": "Time",
}

FORMATS = ("lammps-log", "walker-trace", "lammps-dump", "extxyz", "traj")
#: formats of time series of scalar columns (CVs ``log:NAME``), not of structures
COLUMN_FORMATS = ("lammps-log", "walker-trace")
_STRUCTURE_FORMATS = ("lammps-dump", "extxyz", "traj")


@dataclass
class ThermoLog:
    """Thermo output of one LAMMPS log.

    ``columns`` maps each printed header (``Step``, ``Temp``, ``Volume`` ...) to a float array
    with one entry per thermo row over all runs (NaN where a run did not print that column);
    ``run`` holds the 0-based index of the run each row came from.
    """

    path: str
    columns: dict[str, np.ndarray]
    run: np.ndarray
    n_runs: int

    def __len__(self) -> int:
        return len(self.run)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def resolve(self, name: str) -> str:
        """The header matching ``name`` (exact, thermo keyword alias, or case-insensitive)."""
        if name in self.columns:
            return name
        alias = THERMO_ALIASES.get(name.lower())
        if alias in self.columns:
            return alias
        folded = {key.lower(): key for key in self.columns}
        if name.lower() in folded:
            return folded[name.lower()]
        raise MissingKeyError(
            f"{self.path}: no thermo column {name!r}; available: {', '.join(self.columns)}"
        )

    def get(self, name: str) -> np.ndarray:
        """Column ``name`` (see :meth:`resolve`) as a float array."""
        return self.columns[self.resolve(name)]


def read_thermo_log(path: str | Path, drop_repeated_steps: bool = True) -> ThermoLog:
    """Read all thermo blocks of LAMMPS log ``path``.

    ``WARNING`` lines and the ``Fix halt condition ...`` message inside a thermo block are
    skipped (the row printed after the halt message is kept). With ``drop_repeated_steps`` the
    first row of a run is dropped when its ``Step`` equals the last ``Step`` of the previous run
    (LAMMPS prints the starting step of every run again).
    """
    import lammps_logfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LAMMPS log not found: {path}")
    lines = path.read_text(errors="replace").splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.startswith(("Fix halt condition", "WARNING"))]
    frame = lammps_logfile.read_log(io.StringIO("".join(kept)))
    if frame.empty:
        raise ValueError(
            f"{path}: no thermo output found (is this a LAMMPS log with at least one `run`?)"
        )
    run = frame["run_num"].to_numpy(dtype=int)
    columns = {
        str(name): frame[name].to_numpy(dtype=float) for name in frame.columns if name != "run_num"
    }
    if drop_repeated_steps and "Step" in columns:
        step = columns["Step"]
        starts = np.flatnonzero(np.diff(run) != 0) + 1
        drop = [i for i in starts if step[i] == step[i - 1]]
        if drop:
            keep = np.ones(len(run), dtype=bool)
            keep[drop] = False
            columns = {name: values[keep] for name, values in columns.items()}
            run = run[keep]
    return ThermoLog(str(path), columns, run, int(run.max()) + 1)


def read_loop_time(path: str | Path, which: int = 0) -> tuple[float, int] | None:
    """(seconds, steps) of the ``Loop time of X on N procs for S steps`` line of a LAMMPS log:
    the MD loop of one ``run`` command without start-up and model loading. ``which`` indexes the
    ``run`` commands that finished (-1: the last). None when the log or that line is missing
    (e.g. a killed run)."""
    path = Path(path)
    if not path.exists():
        return None
    loops = [line.split() for line in path.read_text(errors="replace").splitlines()
             if line.startswith("Loop time of ")]
    try:
        words = loops[which]
    except IndexError:
        return None
    return float(words[3]), int(words[8])


@dataclass
class DumpFrame:
    """One frame of a ``dump custom`` file: per-atom columns sorted by atom id (if present)."""

    timestep: int
    n_atoms: int
    box_header: str  # flags after "ITEM: BOX BOUNDS", e.g. "xy xz yz pp pp pp"
    box: np.ndarray  # [3, 2] or [3, 3] rows of the BOX BOUNDS section, Å
    columns: dict[str, np.ndarray] = field(default_factory=dict)


def read_dump_columns(path: str | Path) -> list[DumpFrame]:
    """Parse a LAMMPS ``dump custom`` text file; every numeric column is kept as a float array,
    a column that is not numeric (``element``, type labels) as an array of strings.

    Rows are sorted by the ``id`` column when there is one, so atom ``i`` of every frame is the
    same atom (LAMMPS writes atoms in rank order unless ``dump_modify sort id``).
    """
    path = Path(path)
    frames: list[DumpFrame] = []
    with open(path) as handle:
        lines = iter(handle)
        for line in lines:
            if line.strip() in ("ITEM: UNITS", "ITEM: TIME"):  # dump_modify units/time yes
                next(lines, None)
                continue
            if not line.startswith("ITEM: TIMESTEP"):
                if line.strip():
                    raise ValueError(f"{path}: expected 'ITEM: TIMESTEP', got {line.strip()!r}")
                continue
            try:
                timestep = int(next(lines).split()[0])
                _expect(path, next(lines), "ITEM: NUMBER OF ATOMS")
                n_atoms = int(next(lines).split()[0])
                box_header = next(lines)
                _expect(path, box_header, "ITEM: BOX BOUNDS")
                box = np.array([[float(v) for v in next(lines).split()] for _ in range(3)])
                header = next(lines)
                _expect(path, header, "ITEM: ATOMS")
                names = header.split()[2:]
                rows = [next(lines) for _ in range(n_atoms)]
            except StopIteration:
                # a dump being written (or cut by a crash): keep the complete frames
                break
            columns = _dump_table(path, timestep, rows, names)
            if "id" in columns and columns["id"].dtype.kind == "f":
                order = np.argsort(columns["id"], kind="stable")
                columns = {name: values[order] for name, values in columns.items()}
            flags = box_header.strip()[len("ITEM: BOX BOUNDS"):].strip()
            frames.append(DumpFrame(timestep, n_atoms, flags, box, columns))
    if not frames:
        raise ValueError(f"{path}: no complete frame found in LAMMPS dump")
    return frames


def _dump_table(path: Path, timestep: int, rows: list[str], names: list[str]) -> dict:
    """Columns of one frame's atom rows: float arrays, or string arrays for columns that are not
    numeric (``element``, type labels)."""
    try:  # all-numeric frames (the common case): numpy's parser, several times faster
        table = np.loadtxt(rows, ndmin=2) if rows else np.zeros((0, len(names)))
    except ValueError:  # a text column, or rows of different lengths
        table = None
    if table is not None and table.shape[1] == len(names):
        return {name: table[:, k] for k, name in enumerate(names)}
    cells = [row.split() for row in rows]
    for row in cells:
        if len(row) != len(names):
            raise ValueError(
                f"{path}: frame at step {timestep} has {len(row)} columns, header names "
                f"{len(names)}"
            )
    table = np.array(cells, dtype=str).reshape(len(cells), len(names))
    columns = {}
    for k, name in enumerate(names):
        try:
            columns[name] = table[:, k].astype(float)
        except ValueError:
            columns[name] = table[:, k]
    return columns


def _expect(path: Path, line: str, prefix: str) -> None:
    if not line.startswith(prefix):
        raise ValueError(f"{path}: malformed LAMMPS dump, expected {prefix!r}, got {line.strip()!r}")


def detect_format(path: str | Path) -> str:
    """One of :data:`FORMATS`, from the file name, else from the first line of the file."""
    path = Path(path)
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix == ".traj":
        return "traj"
    if suffix == ".npz":
        return "walker-trace"
    if suffix in (".extxyz", ".xyz"):
        return "extxyz"
    if suffix in (".lammpstrj", ".dump") or name.startswith("dump."):
        return "lammps-dump"
    if suffix == ".log" or name.startswith("log.") or name == "log.lammps":
        return "lammps-log"
    if path.is_file():
        with open(path, errors="replace") as handle:
            first = handle.readline()
        if first.startswith("ITEM: TIMESTEP"):
            return "lammps-dump"
        if first.startswith("LAMMPS ("):
            return "lammps-log"
        if re.fullmatch(r"\s*\d+\s*", first):
            return "extxyz"
    raise ValueError(
        f"cannot tell the format of {path}; name it *.log, *.npz (walker trace), *.lammpstrj, "
        "*.extxyz or *.traj, or "
        f"pass the format explicitly (one of {', '.join(FORMATS)})"
    )


def read_walker_trace(path: str | Path) -> ThermoLog:
    """An AL walker's ``trace.npz`` as a :class:`ThermoLog` (one run): each 1-D array is a column
    under its key; each column k of a 2-D array (``cvs``: the campaign's dihedrals, degrees) is
    ``NAME[k+1]`` (1-based, as LAMMPS names vector elements)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"walker trace not found: {path}")
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key], dtype=float) for key in data.files}
    except (OSError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a walker trace (.npz of numeric arrays): {exc}") from None
    columns: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if value.ndim == 1:
            columns[key] = value
        elif value.ndim == 2:
            for k in range(value.shape[1]):
                columns[f"{key}[{k + 1}]"] = value[:, k]
    lengths = {len(v) for v in columns.values()}
    if not columns or len(lengths) != 1:
        raise ValueError(f"{path}: not a walker trace (needs 1-D or 2-D arrays of one length; "
                         f"got {', '.join(f'{k} {v.shape}' for k, v in arrays.items())})")
    n = lengths.pop()
    return ThermoLog(str(path), columns, np.zeros(n, dtype=int), 1)


def read_frames(
    path: str | Path, fmt: str | None = None, index: str | int | slice = ":"
) -> tuple[list, list[dict]]:
    """Structures in ``path`` as ``(atoms_list, extras)``.

    ``extras[i]`` holds the per-frame values that are not positions or numbers: for dumps the
    ``timestep`` and every extra per-atom column (e.g. ``c_uat``, ``f_ID``) as arrays sorted by
    id; for extxyz/traj the scalar ``atoms.info`` entries, the extra ``atoms.arrays`` and any
    calculator results. ``fmt`` overrides :func:`detect_format`.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"structure file not found: {path}")
    fmt = fmt or detect_format(path)
    if fmt not in _STRUCTURE_FORMATS:
        raise ValueError(
            f"{path}: format {fmt!r} holds no structures; structure formats: "
            f"{', '.join(_STRUCTURE_FORMATS)} (thermo columns are read with read_thermo_log)"
        )
    if fmt == "lammps-dump":
        raw = read_dump_columns(path)
        frames = ase.io.read(path, index=":", format="lammps-dump-text")
        if len(frames) != len(raw):
            frames = frames[: len(raw)]
        core = {"id", "type", "x", "y", "z", "xs", "ys", "zs", "xu", "yu", "zu", "element", "mass"}
        extras = []
        for atoms, dump in zip(frames, raw):
            extra = {"timestep": dump.timestep}
            extra.update({k: v for k, v in dump.columns.items() if k not in core})
            extras.append(extra)
        sel = _select(len(frames), index)
        return [frames[i] for i in sel], [extras[i] for i in sel]
    frames = ase.io.read(path, index=":", format=fmt)
    extras = [_ase_extras(atoms) for atoms in frames]
    sel = _select(len(frames), index)
    return [frames[i] for i in sel], [extras[i] for i in sel]


def _select(n: int, index: str | int | slice) -> list[int]:
    if isinstance(index, int):
        return [range(n)[index]]
    if isinstance(index, str):
        parts = [int(p) if p else None for p in index.split(":")] if ":" in index else None
        index = slice(*parts) if parts is not None else slice(int(index), int(index) + 1 or None)
    return list(range(n))[index]


def _ase_extras(atoms) -> dict:
    extra: dict = {}
    for key, value in atoms.info.items():
        if np.isscalar(value) or (isinstance(value, np.ndarray) and value.ndim == 0):
            extra[key] = value
    for key, value in atoms.arrays.items():
        if key not in ("numbers", "positions"):
            extra[key] = np.asarray(value)
    if atoms.calc is not None:
        for key, value in getattr(atoms.calc, "results", {}).items():
            extra.setdefault(key, value)
    return extra
