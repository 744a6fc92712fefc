"""Structures in and out: any file ASE reads, extxyz out (labels of attached calculators kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ase import Atoms
from ase.io import read, write


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


def read_structure_files(spec, index: str = ":", what: str = "structures") -> list[Atoms]:
    """Frames ``index`` (ASE syntax) of every file of ``spec`` (a path or a list of paths), in
    order; ``what`` names the setting in the error for an empty ``spec``."""
    paths = [spec] if isinstance(spec, (str, Path)) else list(spec or [])
    if not paths:
        raise ValueError(f"no structure files given ({what})")
    frames: list[Atoms] = []
    for p in paths:
        frames.extend(read_structures(p, index=str(index)))
    return frames
