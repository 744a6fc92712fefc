"""Where independent AL jobs (MD walkers, reference calculations) run concurrently.

Interface (:class:`Executor`): ``map_unordered(fn, items)`` yields ``(i, result_or_exception)``
as jobs finish; ``futures_executor()`` returns a ``concurrent.futures``-like object (``submit``
returning futures) for :func:`ubmd.labelling.label_structures`, or None to let the labeller use
its own killable local workers; ``close()``.

* :class:`LocalExecutor` (default): a ``spawn`` process pool of up to ``n_workers`` processes on
  this machine, also for one worker or one job: a job that kills its process (a segfault in a
  calculator or a compiled extension) breaks the pool, not the driver. ``inline=True`` runs the
  jobs in this process instead: no start-up cost, easiest to debug, but a crash ends the driver.
* :class:`DaskExecutor`: ``dask.distributed`` -- a scheduler at ``address`` (e.g. one started
  by ``dask-jobqueue`` on SLURM/PBS, or ``dask scheduler`` + ``dask worker`` by hand), or a
  ``LocalCluster`` of ``n_workers`` single-threaded worker processes.

Why Dask rather than Parsl: both scale from a laptop to batch-scheduled clusters. Dask's
futures implement the ``concurrent.futures`` protocol (``Client.get_executor()``), so the
labeller and the walkers use one code path for local pools and clusters; it is a pure pip
dependency with a local mode that needs no configuration (tests run it), and it has live
dashboards and worker-loss recovery. Parsl's strengths -- file staging between sites, pilot jobs
over many providers, app decorators -- matter for multi-site workflows; a campaign here is a
single driver that hands out short, independent, in-memory jobs, which is exactly Dask's model.
Per-job timeouts that kill a stuck job are the local labeller's; on Dask a timed-out job is
abandoned (the LAMMPS walkers enforce their own timeout on the subprocess either way).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from typing import Any, Callable, Iterator, Sequence


class Executor:
    """Base class; see the module docstring."""

    n_workers: int = 1

    def map_unordered(self, fn: Callable, items: Sequence) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def futures_executor(self):
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalExecutor(Executor):
    """Process pool (``spawn``) on this machine; ``inline=True`` runs the jobs in this process."""

    def __init__(self, n_workers: int = 2, inline: bool = False):
        if int(n_workers) < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        self.n_workers = int(n_workers)
        self.inline = bool(inline)

    def map_unordered(self, fn, items):
        items = list(items)
        if not items:
            return
        if self.inline:
            yield from _run_inline(fn, items)
            return
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(self.n_workers, len(items)),
                                    mp_context=ctx) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for fut in cf.as_completed(futures):
                try:
                    yield futures[fut], fut.result()
                except Exception as exc:  # noqa: BLE001 - includes BrokenProcessPool
                    yield futures[fut], exc


def _run_inline(fn, items):
    """``fn(item)`` in this process; the torch thread count a job sets (walkers use 1 thread) is
    restored afterwards, so the driver's later stages run as they do with a process pool."""
    import sys

    torch = sys.modules.get("torch")
    n_threads = torch.get_num_threads() if torch is not None else None
    try:
        for i, item in enumerate(items):
            try:
                yield i, fn(item)
            except Exception as exc:  # noqa: BLE001 - reported to the caller per job
                yield i, exc
    finally:
        if n_threads is not None:
            torch.set_num_threads(n_threads)


class DaskExecutor(Executor):
    """``dask.distributed`` client: a remote scheduler or a local cluster of processes."""

    def __init__(self, n_workers: int = 2, address: str | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("executor.kind: dask needs dask.distributed "
                              "(pip install 'ubmd[cluster]')") from exc
        self._cluster = None
        if address:
            self.client = Client(address)
        else:
            self._cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1,
                                         processes=True, dashboard_address=None)
            self.client = Client(self._cluster)
        self.n_workers = max(1, len(self.client.scheduler_info().get("workers", {})) or int(n_workers))

    def map_unordered(self, fn, items):
        from distributed import as_completed

        futures = {self.client.submit(fn, item, pure=False): i for i, item in enumerate(items)}
        for fut in as_completed(list(futures)):
            try:
                yield futures[fut], fut.result()
            except Exception as exc:  # noqa: BLE001 - reported to the caller per job
                yield futures[fut], exc

    def futures_executor(self):
        return self.client.get_executor(pure=False)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(cfg) -> Executor:
    """Executor from an :class:`ubmd.al.config.ExecutorConfig`."""
    if cfg.kind == "local":
        return LocalExecutor(cfg.n_workers, inline=cfg.inline)
    if cfg.inline:
        raise ValueError("executor.inline: true runs walkers in the driver's process and applies "
                         f"to executor.kind: local only, not {cfg.kind!r}")
    if cfg.kind == "dask":
        return DaskExecutor(cfg.n_workers, cfg.address)
    raise ValueError(f"executor.kind must be local or dask, got {cfg.kind!r}")
