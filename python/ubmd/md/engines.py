"""The MD engines and running one walker with them.

An engine is a function ``run(task: WalkerTask) -> summary dict`` that writes the walker's files
(:mod:`.task`). Built in: ``ase`` (:mod:`.ase_engine`, :class:`ubmd.calculator.UBMDCalculator`
with ASE integrators) and ``lammps`` (:mod:`.lammps_engine`, ``pair_style ubmd`` in an ``lmp``
subprocess). :func:`register_engine` adds one (e.g. another MD code); it must be registered in
every process that runs walkers (worker processes import the module that registers it when the
function is importable by name).
"""

from __future__ import annotations

import importlib
import time
import traceback
from pathlib import Path
from typing import Callable

from ..io import write_json_atomic
from ..plugin import find_executable, plugin_path
from .task import STOP_ERROR, SUMMARY, WalkerTask

#: engine name -> "module:function" (imported when first used)
ENGINES: dict[str, str] = {"ase": "ubmd.md.ase_engine:run_ase_walker",
                           "lammps": "ubmd.md.lammps_engine:run_lammps_walker"}
AUTO = "auto"  # lammps when the plugin and lmp are found, else ase


def register_engine(name: str, target: str | Callable) -> None:
    """Make ``name`` a walker engine: ``target`` is ``"module:function"`` or the function."""
    if not callable(target) and ":" not in str(target):
        raise ValueError(f"engine target must be 'module:function' or a function, got {target!r}")
    ENGINES[name] = target


def engine_runner(name: str) -> Callable:
    """The run function of engine ``name``."""
    if name not in ENGINES:
        raise ValueError(f"unknown walker engine {name!r}; engines: {', '.join(sorted(ENGINES))}")
    target = ENGINES[name]
    if callable(target):
        return target
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def lammps_available(lammps_cfg) -> bool:
    """True when the plugin file and the LAMMPS executable (and mpirun, if used) are found."""
    try:
        plugin_path(lammps_cfg.plugin)
    except FileNotFoundError:
        return False
    return find_executable(lammps_cfg.command) is not None and (
        lammps_cfg.mpi_ranks <= 1 or find_executable(lammps_cfg.mpirun) is not None)


def resolve_engine(name: str, lammps_cfg) -> str:
    """``name``, or for ``auto``: ``lammps`` when the ubmd plugin and lmp are found, else ``ase``."""
    if name != AUTO:
        return name
    return "lammps" if lammps_available(lammps_cfg) else "ase"


def run_walker(task: WalkerTask) -> dict:
    """Run one walker with its engine; never raises: a failure is reported in the summary
    (``stop_reason: error``), which is written last (its presence marks the walker finished)."""
    t0 = time.perf_counter()
    Path(task.workdir).mkdir(parents=True, exist_ok=True)
    try:
        summary = engine_runner(task.engine)(task)
    except Exception as exc:  # noqa: BLE001 - a failed walker must not end the campaign
        summary = {"index": task.index, "engine": task.engine, "stop_reason": STOP_ERROR,
                   "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                   "n_steps": 0, "n_candidates": 0}
    summary["wall_s"] = time.perf_counter() - t0
    summary.setdefault("temperature_K", task.temperature)
    summary.setdefault("pressure_bar", task.pressure)
    write_json_atomic(summary, Path(task.workdir) / SUMMARY)
    return summary
