"""Process management, once: where independent jobs (reference labels, MD walkers, ensemble members)
run concurrently, and how a failed job is reported.

One interface, :meth:`Executor.map_unordered` ``(fn, items, timeout=None)``: it yields
``(i, result)`` as jobs finish, in completion order, where ``result`` is ``fn(items[i])`` or a
:class:`JobFailure` with a typed :class:`FailureKind` -- the job raised (``error``), its worker
process died (``crashed``: a segfault in a calculator or a compiled extension) or it ran past
``timeout`` seconds (``timeout``). A failed job never stops the others, and ``map_unordered``
itself raises only for bad arguments (and, for a local pool that keeps breaking from outside,
after :data:`MAX_POOL_RESTARTS` replacements).

Long: one failure model for four executors (a pebble pool, inline, concurrent.futures, Dask) and
the thread-variable and main-guard rules they share; split, each would restate it.

* :class:`LocalExecutor` (default): ``n_workers`` processes on this machine through pebble's
  ``ProcessPool`` (``spawn`` start method). A crashing job takes down only its own worker, which
  pebble replaces; a job past its timeout is killed (the clock starts when a worker takes the job,
  so worker start-up is not counted). ``inline=True`` runs the jobs in this process instead (no
  start-up cost, easiest to debug and profile; a crash ends the driver, a timeout is not enforced).
* :class:`DaskExecutor`: ``dask.distributed`` -- a scheduler at ``address`` (e.g. started by
  ``dask-jobqueue`` on SLURM/PBS) or a ``LocalCluster``. Every job is submitted at once (the
  scheduler hands them to the workers it has, also to workers that join later) unless a
  ``limit`` is given. A timed-out job is abandoned (cancelled if still queued), not killed.
* :class:`FuturesExecutor`: any ``concurrent.futures``-like object (``submit`` returning futures),
  with at most ``n_workers`` jobs in flight; timeouts abandon as for Dask.

Why pebble: it is the well-kept library that has exactly the per-job semantics needed here --
per-job timeouts that kill the worker, and a dead worker that fails only its own job -- which
``concurrent.futures.ProcessPoolExecutor`` lacks (one dead worker breaks the whole pool) and loky
does not change (a dead worker terminates the executor's pending jobs). Why Dask rather than
Parsl for clusters: both scale from a laptop to batch-scheduled clusters; Dask's futures follow
the ``concurrent.futures`` protocol, it is a pure pip dependency with a local mode that needs no
configuration (tests run it), and a campaign here is a single driver handing out short,
independent, in-memory jobs, which is Dask's model; Parsl's file staging and multi-site pilot
jobs matter for other workflows.

Scripts that use the local executor must guard their entry point with
``if __name__ == "__main__":`` (the ``spawn`` rule: workers import the main module).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import enum
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from .errors import RunStopped

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class FailureKind(str, enum.Enum):
    """Why a job gave no result."""

    ERROR = "error"  # the job raised an exception
    CRASHED = "crashed"  # the worker process died (signal or exit) while running the job
    TIMEOUT = "timeout"  # the job ran past its time limit (killed locally, abandoned elsewhere)


@dataclass
class JobFailure:
    """A job without a result: its kind, a one-line reason, seconds spent (since it was handed
    out) and, for ``error``, the traceback text and the job's exception itself (``exception``,
    to re-raise it in the caller with its own type)."""

    kind: FailureKind
    reason: str
    elapsed: float = 0.0
    traceback: str | None = None
    exception: BaseException | None = None

    def __str__(self) -> str:
        return self.reason


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def death_reason(code: int | None) -> str:
    """Why a worker process with exit code ``code`` ended, in words."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process crashed ({name}, exit code {code})"
    return f"worker process exited unexpectedly (exit code {code})"


_ENV_LOCK = threading.RLock()


@contextlib.contextmanager
def thread_variables(threads: int | None):
    """Within the block, the OpenMP/MKL/OpenBLAS thread variables are ``threads`` (None: left
    alone), so that worker processes started meanwhile inherit them before they import anything
    (a spawned worker imports the caller's main module, and with it torch or numpy, first)."""
    if threads is None:
        yield
        return
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
        os.environ.update({k: str(int(threads)) for k in THREAD_VARIABLES})
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _guards_main(source: str) -> bool:
    """Whether a script's top level has an ``if __name__ == "__main__":`` block."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return True  # not ours to judge
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [n for n in ast.walk(node.test) if isinstance(n, ast.Name)]
            consts = [n.value for n in ast.walk(node.test) if isinstance(n, ast.Constant)]
            if any(n.id == "__name__" for n in names) and "__main__" in consts:
                return True
    return False


def check_main_guard(start_method: str = "spawn") -> None:
    """Refuse to start worker processes from a script without ``if __name__ == "__main__":``.

    A ``spawn``ed worker imports the script that started it; without the guard the script's
    top level (the driver itself) runs again in every worker, which cannot start processes of
    its own while it boots, so every job would fail after the workers' start-up, with a message
    about bootstrapping in each worker. Checked in the main process only, for a script file
    (``python driver.py``; notebooks and ``python -c`` have none)."""
    if start_method == "fork" or mp.parent_process() is not None:
        return
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not str(path).endswith(".py") or getattr(main, "__spec__", None) is not None:
        return  # no script file, or ``python -m module`` (its own guard is the module's)
    try:
        with open(path) as fh:
            source = fh.read()
    except OSError:
        return
    if not _guards_main(source):
        from .errors import RunStopped

        raise RunStopped(
            f"{path} starts worker processes (labelling, walkers or training in parallel) but "
            "has no `if __name__ == \"__main__\":` block: each worker process imports the "
            "script and would run it again. Put the script's work into a function and call it "
            "under `if __name__ == \"__main__\":` (docs/python.md)")


def _set_thread_variables(threads: int | None) -> None:
    """Worker initializer: the thread count again, for libraries loaded later, and torch's own
    (torch reads the variables only when it is imported)."""
    if threads is None:
        return
    os.environ.update({k: str(int(threads)) for k in THREAD_VARIABLES})
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(threads))


class Executor:
    """Base class; see the module docstring."""

    n_workers: int = 1

    def map_unordered(self, fn: Callable, items: Sequence, timeout: float | None = None,
                      limit: int | None = None) -> Iterator[tuple[int, Any]]:
        """``(i, fn(items[i]) or JobFailure)`` as jobs finish. ``timeout``: seconds per job;
        ``limit``: at most this many jobs handed out at once (None: the executor's own)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout}")


class LocalExecutor(Executor):
    """Worker processes on this machine (pebble); ``inline=True``: jobs in this process.

    ``threads``: OpenMP/MKL/OpenBLAS threads of each worker (None: inherited)."""

    def __init__(self, n_workers: int = 2, inline: bool = False, threads: int | None = None,
                 start_method: str = "spawn"):
        if int(n_workers) < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        self.n_workers = int(n_workers)
        self.inline = bool(inline)
        self.threads = threads
        self.start_method = start_method

    def map_unordered(self, fn, items, timeout=None, limit=None):
        _check_timeout(timeout)
        items = list(items)
        if not items:
            return
        if self.inline:
            yield from _run_inline(fn, items)
            return
        from pebble import ProcessExpired, ProcessPool

        check_main_guard(self.start_method)
        n_workers = min(self.n_workers, len(items), limit or self.n_workers)

        def new_pool():
            return ProcessPool(max_workers=n_workers, context=mp.get_context(self.start_method),
                               initializer=_set_thread_variables, initargs=(self.threads,))

        # the variables for the whole call: pebble starts replacement workers after a crash or a
        # timeout, and they must inherit them too
        with thread_variables(self.threads):
            pool = new_pool()
            restarts = 0
            # at most n_workers jobs handed out: the next job goes out only after the caller has
            # consumed a result (so a caller that checkpoints each result, then dies, loses no
            # finished job that it was not yet given)
            pending = deque(enumerate(items))
            in_flight: dict[Any, tuple[int, float, Any]] = {}
            try:
                while pending or in_flight:
                    broken = False
                    while pending and len(in_flight) < n_workers and not broken:
                        i, item = pending.popleft()
                        try:
                            fut = pool.schedule(fn, args=(item,), timeout=timeout)
                        except RuntimeError:  # pebble's pool broke (its manager thread died)
                            pending.appendleft((i, item))
                            broken = True
                        else:
                            in_flight[fut] = (i, time.perf_counter(), item)
                    if not broken:
                        done, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
                        for fut in done:
                            i, t0, item = in_flight.pop(fut)
                            if _pool_broke(fut):  # not the job's failure: run it again
                                pending.appendleft((i, item))
                                broken = True
                                continue
                            yield i, _outcome(fut, timeout, time.perf_counter() - t0,
                                              ProcessExpired)
                    if broken:
                        # a broken pool runs nothing more: a new one takes over the jobs that
                        # did not finish (a few times; then the caller gets the error)
                        restarts += 1
                        if restarts > MAX_POOL_RESTARTS:
                            raise RunStopped(
                                f"the worker pool broke {restarts} times (its worker processes "
                                "were killed from outside, or ran out of memory); finished jobs "
                                "are kept: rerun to continue (a campaign: `ubmd al resume "
                                "<campaign directory>`)")
                        for fut, (i, _, item) in list(in_flight.items()):
                            fut.cancel()
                            pending.appendleft((i, item))
                        in_flight.clear()
                        _close_pool(pool)
                        pool = new_pool()
            finally:
                _close_pool(pool)


MAX_POOL_RESTARTS = 3  # new worker pools per map_unordered call after the pool broke


def _pool_broke(fut) -> bool:
    """Whether a finished pebble future failed because the pool itself broke (pebble's
    ``BrokenProcessPool``, e.g. "All workers expired": workers died outside any job)."""
    from concurrent.futures.process import BrokenProcessPool

    return not fut.cancelled() and isinstance(fut.exception(), BrokenProcessPool)


def _close_pool(pool) -> None:
    """Stop a pebble pool, broken or not."""
    try:
        pool.stop()
        pool.join()
    except Exception:  # noqa: BLE001 - a broken pool may fail to stop; its workers are gone
        pass


def _outcome(fut, timeout: float | None, elapsed: float, expired: type):
    """The result of a finished pebble future, or the :class:`JobFailure` it stands for."""
    try:
        return fut.result()
    except expired as exc:
        return JobFailure(FailureKind.CRASHED, death_reason(exc.exitcode), elapsed)
    except Exception as exc:  # noqa: BLE001 - the job's own error, or pebble's timeout
        # pebble's own timeout carries no remote traceback; a job's TimeoutError does
        if (isinstance(exc, TimeoutError) and timeout is not None
                and not hasattr(exc, "traceback")):
            return JobFailure(FailureKind.TIMEOUT, f"timeout: killed after {elapsed:.3g} s "
                                                   f"(limit {timeout:g} s)", elapsed)
        return JobFailure(FailureKind.ERROR, one_line(exc), elapsed,
                          getattr(exc, "traceback", None), exc)


def _run_inline(fn, items):
    """``fn(item)`` in this process; the torch thread count a job sets (walkers use 1 thread) is
    restored afterwards, so the driver's later stages run as they do with worker processes."""
    torch = sys.modules.get("torch")
    n_threads = torch.get_num_threads() if torch is not None else None
    try:
        for i, item in enumerate(items):
            t0 = time.perf_counter()
            try:
                result = fn(item)
            except Exception as exc:  # noqa: BLE001 - reported to the caller per job
                result = JobFailure(FailureKind.ERROR, one_line(exc), time.perf_counter() - t0,
                                    traceback.format_exc(), exc)
            yield i, result
    finally:
        if n_threads is not None:
            torch.set_num_threads(n_threads)


class FuturesExecutor(Executor):
    """Any ``concurrent.futures``-like executor, at most ``n_workers`` jobs in flight (None: all
    at once); a job past ``timeout`` (counted from its submission) is cancelled if still queued,
    else abandoned."""

    def __init__(self, executor, n_workers: int | None = 2):
        if n_workers is not None and int(n_workers) < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        self.executor = executor
        self.n_workers = None if n_workers is None else int(n_workers)

    def map_unordered(self, fn, items, timeout=None, limit=None):
        _check_timeout(timeout)
        pending = deque(enumerate(items))
        cap = limit or self.n_workers or len(pending) or 1
        in_flight: dict[Any, tuple[int, float]] = {}
        while pending or in_flight:
            while pending and len(in_flight) < cap:
                i, item = pending.popleft()
                try:
                    in_flight[self.executor.submit(fn, item)] = (i, time.perf_counter())
                except Exception as exc:  # noqa: BLE001 - e.g. a broken or closed executor
                    yield i, JobFailure(FailureKind.ERROR, f"submit failed: {one_line(exc)}")
            if not in_flight:
                continue
            wait_s = None
            if timeout is not None:
                oldest = min(t for _, t in in_flight.values())
                wait_s = max(0.0, oldest + timeout - time.perf_counter())
            done, _ = cf.wait(list(in_flight), timeout=wait_s, return_when=cf.FIRST_COMPLETED)
            now = time.perf_counter()
            for fut in done:
                i, t0 = in_flight.pop(fut)
                try:
                    yield i, fut.result()
                except Exception as exc:  # noqa: BLE001 - job errors, cancellation, crashes
                    # a dead process: a broken local pool, or Dask's KilledWorker
                    dead = (isinstance(exc, cf.BrokenExecutor)
                            or type(exc).__name__ == "KilledWorker")
                    kind = FailureKind.CRASHED if dead else FailureKind.ERROR
                    yield i, JobFailure(kind, one_line(exc), now - t0,
                                        getattr(exc, "traceback", None), exc)
            if timeout is not None:
                for fut, (i, t0) in list(in_flight.items()):
                    if now - t0 >= timeout:
                        in_flight.pop(fut)
                        state = "cancelled" if fut.cancel() else "abandoned (may still be running)"
                        yield i, JobFailure(FailureKind.TIMEOUT, f"timeout: {state} after "
                                                                 f"{now - t0:.3g} s (limit "
                                                                 f"{timeout:g} s)", now - t0)


class DaskExecutor(Executor):
    """``dask.distributed``: a scheduler at ``address``, or a local cluster of ``n_workers``
    single-threaded worker processes."""

    def __init__(self, n_workers: int = 2, address: str | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from .errors import MissingImportError

            raise MissingImportError("executor.kind: dask needs dask.distributed "
                              "(pip install 'ubmd[cluster]')") from exc
        self._cluster = None
        if address:
            self.client = Client(address)
        else:
            check_main_guard()
            self._cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1,
                                         processes=True, dashboard_address=None)
            self.client = Client(self._cluster)
        n_known = len(self.client.scheduler_info().get("workers", {}))
        self.n_workers = max(1, n_known or int(n_workers))

    def map_unordered(self, fn, items, timeout=None, limit=None):
        """Every job submitted at once (the scheduler queues them for the workers it has, also
        workers that join later), or at most ``limit`` in flight."""
        futures = FuturesExecutor(self.client.get_executor(pure=False), None)
        yield from futures.map_unordered(fn, items, timeout, limit)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def as_executor(obj, n_workers: int = 2) -> Executor:
    """``obj`` if it is an :class:`Executor`, else a :class:`FuturesExecutor` around it."""
    return obj if isinstance(obj, Executor) else FuturesExecutor(obj, n_workers)


EXECUTOR_KINDS = ("local", "dask")


def make_executor(kind: str = "local", n_workers: int = 2, address: str | None = None,
                  inline: bool = False) -> Executor:
    """An executor by kind (``executor`` section of an AL config: kind, n_workers, address,
    inline)."""
    if kind == "local":
        return LocalExecutor(n_workers, inline=inline)
    if inline:
        raise ValueError("executor.inline: true runs jobs in the driver's process and applies "
                         f"to executor.kind: local only, not {kind!r}")
    if kind == "dask":
        return DaskExecutor(n_workers, address)
    raise ValueError(f"executor.kind must be one of {', '.join(EXECUTOR_KINDS)}, got {kind!r}")
