"""Run reference calculations on many structures concurrently, surviving failed jobs.

Each structure is one *job*: build a fresh calculator from the spec (see
:mod:`ubmd.labelling.calculators`), compute energy (eV), forces (eV/Å) and, for cells periodic in
all three directions, stress (eV/Å^3, ASE sign convention, Voigt order xx yy zz yz xz xy).

By default jobs run in ``n_workers`` persistent worker processes started with ``spawn``: a job
that raises, returns NaN, segfaults (the worker dies) or exceeds ``timeout`` (the worker is
killed) is recorded as a failure with its reason and the worker is replaced; the other jobs
carry on. Any ``concurrent.futures.Executor``-like object (e.g. ``dask.distributed.Client(...)
.get_executor()``) can be used instead; then a crash is whatever the executor reports and a timed
out job can only be abandoned (cancelled if still queued), not killed.

Scripts using the default pool must guard their entry point with ``if __name__ == "__main__":``
(the usual ``spawn`` rule).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import wait as mp_wait
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .calculators import check_structure, make_calculator, normalise_spec, spec_label

__all__ = [
    "POOL_INDEX",
    "LABEL_TIME",
    "LABEL_METHOD",
    "JobOutcome",
    "LabelResult",
    "label_one",
    "label_structures",
    "filter_by_max_force",
]

POOL_INDEX = "pool_index"  # info key: index of the structure in the list given to the labeller
LABEL_TIME = "label_time_s"  # info key: seconds spent in the reference calculation
LABEL_METHOD = "label_method"  # info key: short name of the calculator spec
_ALLOWED_PROPERTIES = ("energy", "forces", "stress")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# ----------------------------------------------------------------------------------------------
# the job (runs inside a worker)
# ----------------------------------------------------------------------------------------------
def _wants_stress(atoms, properties: Sequence[str]) -> bool:
    return "stress" in properties and bool(np.all(atoms.pbc))


def label_one(atoms, spec: Any, properties: Sequence[str] = _ALLOWED_PROPERTIES) -> dict:
    """Label one structure; returns ``{"energy", "forces", "stress" (or None), "elapsed"}``.

    Energy in eV, forces [N, 3] in eV/Å, stress [6] Voigt in eV/Å^3 (only when requested and the
    cell is periodic in x, y and z), elapsed in s. Raises whatever the calculator raises.
    """
    atoms = atoms.copy()
    atoms.calc = None
    check_structure(spec, atoms)
    t0 = time.perf_counter()
    calc = make_calculator(spec)
    atoms.calc = calc
    out = {"energy": None, "forces": None, "stress": None}
    if "energy" in properties:
        out["energy"] = float(atoms.get_potential_energy())
    if "forces" in properties:
        out["forces"] = np.array(atoms.get_forces(apply_constraint=False), dtype=float)
    if _wants_stress(atoms, properties):
        from ase.calculators.calculator import PropertyNotImplementedError

        try:
            out["stress"] = np.array(atoms.get_stress(voigt=True, apply_constraint=False),
                                     dtype=float)
        except PropertyNotImplementedError as exc:
            raise PropertyNotImplementedError(
                f"{type(calc).__name__} has no stress for this periodic cell ({exc}); label "
                "energies and forces only: reference.stress: false in a ubmd al config (NPT "
                "walkers then use a stress learnt from energies alone), "
                "properties=('energy', 'forces') for label_structures"
            ) from exc
    out["elapsed"] = time.perf_counter() - t0
    return out


def _check_finite(result: dict, n_atoms: int) -> str | None:
    """Reason string if a result is unusable, else None."""
    for key in ("energy", "forces", "stress"):
        value = result.get(key)
        if value is None:
            continue
        arr = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(arr)):
            return f"non-finite {key} returned by the calculator"
    forces = result.get("forces")
    if forces is not None and np.shape(forces) != (n_atoms, 3):
        return f"forces have shape {np.shape(forces)}, expected ({n_atoms}, 3)"
    return None


def _format_exception(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def _worker_main(conn) -> None:
    """Worker loop: receive ``(index, atoms, spec, properties)``, acknowledge with
    ``(index, "started")``, then send ``(index, "ok", result)`` or ``(index, "error", reason,
    elapsed)``; ``None`` stops the loop."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, atoms, spec, properties = msg
        conn.send((index, "started"))
        t0 = time.perf_counter()
        try:
            conn.send((index, "ok", label_one(atoms, spec, properties)))
        except Exception as exc:  # noqa: BLE001 - any calculator error is a failed job
            conn.send((index, "error", _format_exception(exc), time.perf_counter() - t0))


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------
@dataclass
class JobOutcome:
    """One finished job: ``atoms`` (labelled copy) on success, else ``reason``; elapsed in s."""

    index: int
    atoms: Any | None
    reason: str | None
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.atoms is not None


@dataclass
class LabelResult:
    """Labelled structures (input order), failures and per-job timings (s).

    ``labelled[k].info[POOL_INDEX]`` is the structure's index in the input list; ``failures`` is a
    list of ``{"index", "reason", "elapsed"}``; ``timings`` maps every job index to its elapsed
    time (compute time for successes, wall time for failures).
    """

    labelled: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def n_jobs(self) -> int:
        return len(self.timings)

    @property
    def labelled_indices(self) -> list[int]:
        return [a.info[POOL_INDEX] for a in self.labelled]

    def summary(self) -> str:
        t = np.array([a.info[LABEL_TIME] for a in self.labelled]) if self.labelled else None
        mean = f", mean {t.mean():.3g} s/label" if t is not None else ""
        return (f"{len(self.labelled)}/{self.n_jobs} labelled, {len(self.failures)} failed, "
                f"wall {self.wall_time_s:.3g} s{mean}")


def _attach(atoms, index: int, result: dict, method: str):
    """Copy of ``atoms`` with a SinglePointCalculator holding ``result`` and bookkeeping info."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = atoms.copy()
    out.calc = None
    results = {}
    if result.get("energy") is not None:
        results["energy"] = result["energy"]
        results["free_energy"] = result["energy"]
    if result.get("forces") is not None:
        results["forces"] = np.asarray(result["forces"], dtype=float)
    if result.get("stress") is not None:
        results["stress"] = np.asarray(result["stress"], dtype=float)
    out.calc = SinglePointCalculator(out, **results)
    out.info[POOL_INDEX] = int(index)
    out.info[LABEL_TIME] = float(result["elapsed"])
    out.info[LABEL_METHOD] = method
    return out


# ----------------------------------------------------------------------------------------------
# default local pool: persistent spawned workers, killed and replaced on crash/timeout
# ----------------------------------------------------------------------------------------------
_ENV_LOCK = threading.Lock()


@contextmanager
def _thread_env(threads: int | None):
    """Temporarily set the OpenMP/BLAS thread variables inherited by spawned workers."""
    if threads is None:
        yield
        return
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in _THREAD_VARS}
        os.environ.update({k: str(int(threads)) for k in _THREAD_VARS})
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class _Worker:
    def __init__(self, ctx, threads: int | None):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True,
                                name="ubmd-labeller")
        with _thread_env(threads):
            self.proc.start()
        child.close()
        self.job: int | None = None
        self.started = False  # the worker acknowledged the current job
        self.t_start = 0.0  # submit time, then acknowledgement time

    def submit(self, index: int, atoms, spec, properties) -> None:
        self.job, self.started, self.t_start = index, False, time.perf_counter()
        self.conn.send((index, atoms, spec, properties))

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(timeout=2)
        self.kill()


def _death_reason(proc) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process crashed ({name}, exit code {code})"
    return f"worker process exited unexpectedly (exit code {code})"


def _run_local(jobs, spec, properties, n_workers, timeout, threads, start_method, on_outcome):
    """Jobs on persistent spawned workers; the timeout clock of a job starts when its worker
    acknowledges it (so a worker's start-up, ~0.3-2 s, is not counted)."""
    ctx = mp.get_context(start_method)
    pending = deque(jobs)  # (index, atoms)
    workers: list[_Worker | None] = [None] * max(1, min(n_workers, len(pending)))
    try:
        while pending or any(w is not None and w.job is not None for w in workers):
            for slot, w in enumerate(workers):
                if pending and (w is None or w.job is None):
                    if w is None:
                        w = workers[slot] = _Worker(ctx, threads)
                    index, atoms = pending.popleft()
                    w.submit(index, atoms, spec, properties)
            busy = [w for w in workers if w is not None and w.job is not None]
            deadlines = [w.t_start + timeout for w in busy if w.started and timeout is not None]
            wait_s = max(0.0, min(deadlines) - time.perf_counter()) if deadlines else None
            ready = set(mp_wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                                timeout=wait_s))
            for slot, w in enumerate(workers):
                if w is None or w.job is None:
                    continue
                index = w.job
                if w.conn in ready or w.proc.sentinel in ready:
                    msg = None
                    try:
                        while msg is None and w.conn.poll():
                            msg = w.conn.recv()
                            if msg[1] == "started":
                                w.started, w.t_start, msg = True, time.perf_counter(), None
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None:
                        w.job = None
                        if msg[1] == "ok":
                            on_outcome(index, msg[2], None, msg[2]["elapsed"])
                        else:
                            on_outcome(index, None, msg[2], msg[3])
                        continue
                    if w.proc.is_alive():  # only the acknowledgement arrived
                        continue
                    w.proc.join(timeout=5)  # the process died without answering
                    elapsed = time.perf_counter() - w.t_start
                    on_outcome(index, None, _death_reason(w.proc), elapsed)
                    w.kill()
                    workers[slot] = None
                    continue
                elapsed = time.perf_counter() - w.t_start
                if timeout is not None and w.started and elapsed >= timeout:
                    w.kill()
                    workers[slot] = None
                    on_outcome(index, None, f"timeout: killed after {elapsed:.3g} s "
                                            f"(limit {timeout:g} s)", elapsed)
    finally:
        for w in workers:
            if w is not None:
                w.stop()


# ----------------------------------------------------------------------------------------------
# any concurrent.futures-like executor
# ----------------------------------------------------------------------------------------------
def _run_executor(executor, jobs, spec, properties, n_workers, timeout, on_outcome):
    pending = deque(jobs)
    in_flight: dict[Any, tuple[int, float]] = {}
    cap = max(1, int(n_workers))
    while pending or in_flight:
        while pending and len(in_flight) < cap:
            index, atoms = pending.popleft()
            t0 = time.perf_counter()
            try:
                fut = executor.submit(label_one, atoms, spec, properties)
            except Exception as exc:  # noqa: BLE001 - e.g. BrokenProcessPool
                on_outcome(index, None, f"submit failed: {_format_exception(exc)}", 0.0)
                continue
            in_flight[fut] = (index, t0)
        if not in_flight:
            continue
        wait_s = None
        if timeout is not None:
            now = time.perf_counter()
            wait_s = max(0.0, min(t0 + timeout - now for _, t0 in in_flight.values()))
        done, _ = cf.wait(list(in_flight), timeout=wait_s, return_when=cf.FIRST_COMPLETED)
        now = time.perf_counter()
        for fut in done:
            index, t0 = in_flight.pop(fut)
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - job errors, cancellation, crashes
                on_outcome(index, None, _format_exception(exc), now - t0)
            else:
                on_outcome(index, result, None, result.get("elapsed", now - t0))
        if timeout is not None:
            for fut, (index, t0) in list(in_flight.items()):
                if now - t0 >= timeout:
                    in_flight.pop(fut)
                    cancelled = fut.cancel()
                    state = "cancelled" if cancelled else "abandoned (may still be running)"
                    on_outcome(index, None, f"timeout: {state} after {now - t0:.3g} s "
                                            f"(limit {timeout:g} s)", now - t0)


# ----------------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------------
def _check_importable(spec) -> None:
    """Fail early (in the parent) on an import spec whose module or file does not exist."""
    import importlib.util
    from pathlib import Path

    from .calculators import BUILTINS

    if callable(spec) or "import" not in spec:
        return
    module_part = spec["import"].rpartition(":")[0]
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        ok = Path(module_part).expanduser().is_file()
    else:
        try:
            ok = importlib.util.find_spec(module_part) is not None
        except (ImportError, ValueError):
            ok = False
    if not ok:
        raise ImportError(f"cannot find calculator module for {spec['import']!r}; built-in "
                          f"names: {', '.join(sorted(BUILTINS))}")


def label_structures(
    atoms_list: Iterable,
    spec: Any,
    n_workers: int = 2,
    timeout: float | None = None,
    properties: Sequence[str] = _ALLOWED_PROPERTIES,
    callback: Callable[[JobOutcome], None] | None = None,
    progress: bool = False,
    executor: Any | None = None,
    threads_per_worker: int | None = 1,
    start_method: str = "spawn",
) -> LabelResult:
    """Label structures concurrently; failed jobs are recorded and skipped, never raised.

    Args:
        atoms_list: ASE Atoms objects (not modified).
        spec: calculator spec (see :mod:`ubmd.labelling.calculators`).
        n_workers: concurrent jobs (worker processes, or in-flight futures for ``executor``).
        timeout: per-job limit in s (None = no limit). Locally the worker is killed.
        properties: subset of ("energy", "forces", "stress"); stress is only computed for cells
            periodic in x, y and z (a periodic cell whose calculator lacks stress fails).
        callback: called with a :class:`JobOutcome` as each job finishes (e.g. to checkpoint
            each label to disk); exceptions from it propagate (workers are shut down first).
        progress: show a tqdm progress bar.
        executor: object with ``submit(fn, *args)`` returning concurrent.futures-like futures
            (ProcessPoolExecutor, ``dask.distributed.Client.get_executor()``...). None: local
            spawned worker processes.
        threads_per_worker: OMP/MKL/OpenBLAS threads in local workers (None: inherit).
        start_method: multiprocessing start method for local workers.

    Returns:
        :class:`LabelResult` with labelled copies (SinglePointCalculator holding energy eV,
        forces eV/Å, stress eV/Å^3; ``info`` gets ``pool_index``, ``label_time_s``,
        ``label_method``) in input order, failures and timings.

    Raises:
        ValueError/TypeError/ImportError only for a malformed spec or arguments, before any job.
    """
    spec = normalise_spec(spec)
    _check_importable(spec)
    properties = tuple(properties)
    bad = [p for p in properties if p not in _ALLOWED_PROPERTIES]
    if bad or not properties:
        raise ValueError(f"properties must be a non-empty subset of {_ALLOWED_PROPERTIES}, "
                         f"got {properties}")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout}")
    if int(n_workers) < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    structures = list(atoms_list)
    method = spec_label(spec)
    result = LabelResult()
    t_wall = time.perf_counter()

    jobs = []
    for index, atoms in enumerate(structures):
        clean = atoms.copy()
        clean.calc = None
        jobs.append((index, clean))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=f"labelling ({method})", unit="job")

    labelled: dict[int, Any] = {}

    def on_outcome(index: int, res: dict | None, reason: str | None, elapsed: float) -> None:
        if res is not None:
            reason = _check_finite(res, len(structures[index]))
        atoms = None
        if reason is None:
            atoms = _attach(structures[index], index, res, method)
            labelled[index] = atoms
        else:
            result.failures.append({"index": index, "reason": reason, "elapsed": float(elapsed)})
        result.timings[index] = float(elapsed)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=len(result.failures))
        if callback is not None:
            callback(JobOutcome(index, atoms, reason, float(elapsed)))

    try:
        if jobs:
            if executor is None:
                _run_local(jobs, spec, properties, int(n_workers), timeout, threads_per_worker,
                           start_method, on_outcome)
            else:
                _run_executor(executor, jobs, spec, properties, int(n_workers), timeout,
                              on_outcome)
    finally:
        if bar is not None:
            bar.close()
    result.labelled = [labelled[i] for i in sorted(labelled)]
    result.failures.sort(key=lambda f: f["index"])
    result.timings = dict(sorted(result.timings.items()))
    result.wall_time_s = time.perf_counter() - t_wall
    return result


# ----------------------------------------------------------------------------------------------
# post-filter
# ----------------------------------------------------------------------------------------------
def filter_by_max_force(atoms_list: Iterable, max_force: float = 20.0):
    """Split labelled structures into (kept, dropped) by their largest force component.

    A structure is dropped when any |F_ij| exceeds ``max_force`` (eV/Å; 20 in the paper's AL
    loop), when its forces are not finite, or when it has no force label. ``dropped`` is a list
    of ``{"index", "reason", "max_force"}`` where index is ``info["pool_index"]`` if present,
    else the position in ``atoms_list``; ``max_force`` is the largest |F| component (eV/Å, NaN if
    unavailable).
    """
    if not max_force > 0:
        raise ValueError(f"max_force must be positive (eV/Å), got {max_force}")
    kept, dropped = [], []
    for pos, atoms in enumerate(atoms_list):
        index = atoms.info.get(POOL_INDEX, pos)
        forces = None
        if atoms.calc is not None:
            forces = atoms.calc.results.get("forces")
        if forces is None and "forces" in atoms.arrays:
            forces = atoms.arrays["forces"]
        if forces is None:
            dropped.append({"index": index, "reason": "no force label", "max_force": math.nan})
            continue
        forces = np.asarray(forces, dtype=float)
        if not np.all(np.isfinite(forces)):
            dropped.append({"index": index, "reason": "non-finite forces", "max_force": math.nan})
            continue
        fmax = float(np.abs(forces).max()) if forces.size else 0.0
        if fmax > max_force:
            dropped.append({"index": index, "max_force": fmax,
                            "reason": f"force component {fmax:.3g} eV/Å > {max_force:g} eV/Å"})
        else:
            kept.append(atoms)
    return kept, dropped
