"""The walkers of one round: which start structure, temperature and pressure each gets, and what
their runs leave for the candidate pool. The MD itself is :mod:`ubmd.md`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from ase import Atoms

from ..io import read_frames, read_json, write_json_atomic
from ..md.task import CANDIDATES, STOP_ERROR, SUMMARY, WalkerTask, error_summary

#: what a round's summary keeps of each walker's summary
BRIEF_KEYS = ("index", "stop_reason", "n_steps", "time_fs", "n_candidates",
              "max_atomic_uncertainty", "wall_s", "temperature_K", "pressure_bar",
              "final_volume", "reflections", "max_temperature_K", "runaway_temperature_K", "error",
              "crashed")


def as_list(value) -> list:
    """A walker setting (a number or a list assigned to walkers in turn) as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def cyclic(value, k: int) -> float:
    """Entry ``k mod len`` of a walker setting (walker k's temperature or pressure)."""
    values = as_list(value)
    return float(values[k % len(values)])


def start_groups(frames: list[Atoms]) -> list[list[Atoms]]:
    """Candidate start structures grouped by origin, in order of first appearance: the origin is
    ``info["start_index"]`` (set in round 0 and carried along through the walkers' candidates),
    else the chemical formula and periodicity; order within an origin is kept."""
    groups: dict = {}
    for f in frames:
        key = f.info.get("start_index")
        key = ("start", int(key)) if key is not None else (
            "formula", f.get_chemical_formula(), tuple(bool(x) for x in f.pbc))
        groups.setdefault(key, []).append(f)
    return list(groups.values())


def shuffled(frames: list[Atoms], seed: int, round_index: int) -> list[Atoms]:
    """``frames`` in a random order that depends only on (``seed``, ``round_index``): a
    campaign that resumes deals its walkers the same starts."""
    order = np.random.default_rng([int(seed), int(round_index)]).permutation(len(frames))
    return [frames[i] for i in order]


def walker_start(groups: list[list[Atoms]], k: int, n_settings: int = 1) -> Atoms:
    """Start structure of walker k: every origin gets walkers (a campaign with two molecules, or
    a bulk cell and a slab, explores all of them, not only the first one's perturbed copies), and
    every origin meets every walker setting (walker k runs temperature/pressure entry
    k % n_settings). Origin g = k mod G (round-robin over origins, frame k // G of each) pairs
    with every setting by itself when gcd(G, n_settings) = 1; otherwise g is shifted by one per
    lcm(G, n_settings) walkers, which runs through all G x n_settings pairs. One origin: frame
    k mod n, as always."""
    n_groups = len(groups)
    g = k % n_groups
    if math.gcd(n_groups, n_settings) > 1:
        g = (k + k // math.lcm(n_groups, n_settings)) % n_groups
    return groups[g][(k // n_groups) % len(groups[g])]


def walker_tasks(w, starts: list[Atoms], engine: str, model_file: str | Path,
                 walker_dir, round_index: int, dihedrals=None) -> list[WalkerTask]:
    """The round's walker jobs with walker settings ``w`` (a :class:`WalkerConfig` carrying the
    round's threshold); ``walker_dir(k)`` is walker k's directory."""
    groups = start_groups(starts)
    n_settings = math.lcm(len(as_list(w.temperature)), len(as_list(w.pressure)))
    return [WalkerTask(index=k, engine=engine, model_file=str(Path(model_file).resolve()),
                       start=walker_start(groups, k, n_settings),
                       workdir=str(Path(walker_dir(k)).resolve()),
                       temperature=cyclic(w.temperature, k), pressure=cyclic(w.pressure, k),
                       seed=w.seed + 1000 * round_index + k, params=w, dihedrals=dihedrals)
            for k in range(w.n_walkers)]


def finished(task: WalkerTask) -> bool:
    """Whether the walker left a summary that is not an error (failed walkers rerun)."""
    path = Path(task.workdir) / SUMMARY
    return path.exists() and read_json(path).get("stop_reason") != STOP_ERROR


def write_error(task: WalkerTask, error: str, crashed: bool = False,
                traceback: str | None = None) -> None:
    """The summary of a walker whose job gave no summary of its own (it raised in the driver's
    executor, or its process died: ``crashed``)."""
    summary = error_summary(task, error, traceback, **({"crashed": True} if crashed else {}))
    Path(task.workdir).mkdir(parents=True, exist_ok=True)  # a job that never started made none
    write_json_atomic(summary, Path(task.workdir) / SUMMARY)


def collect(tasks: list[WalkerTask], round_index: int) -> tuple[list[Atoms], list[dict]]:
    """The candidate frames of every walker (tagged with round, walker and origin) and the
    walkers' summaries, in walker order."""
    pool, summaries = [], []
    for t in tasks:
        summaries.append(read_json(Path(t.workdir) / SUMMARY))
        origin = t.start.info.get("start_index")
        for f in read_frames(Path(t.workdir) / CANDIDATES):
            f.info["al_round"] = round_index
            f.info["walker"] = t.index
            if origin is not None:  # which start structure this frame descends from
                f.info["start_index"] = origin
            pool.append(f)
    return pool, summaries


def brief(summary: dict) -> dict:
    """What the round's summary keeps of one walker's summary."""
    return {k: summary[k] for k in BRIEF_KEYS if k in summary}
