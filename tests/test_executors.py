"""ubmd.executors: results, typed failures (error, crashed, timeout), the in-flight window, the
inline mode, concurrent.futures and Dask executors."""

from __future__ import annotations

import concurrent.futures as cf
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import executor_jobs as jobs  # noqa: E402

from ubmd.errors import RunStopped  # noqa: E402
from ubmd.executors import (DaskExecutor, FailureKind, FuturesExecutor, JobFailure,  # noqa: E402
                            LocalExecutor, make_executor)


@pytest.mark.parametrize("inline", [True, False])
def test_results_and_errors(inline):
    with LocalExecutor(2, inline=inline) as ex:
        got = dict(ex.map_unordered(jobs.square, [1, 2, 3]))
        assert got == {0: 1, 1: 4, 2: 9}
        assert list(ex.map_unordered(jobs.square, [])) == []
        got = dict(ex.map_unordered(jobs.fail, [7]))
    failure = got[0]
    assert isinstance(failure, JobFailure) and failure.kind is FailureKind.ERROR
    assert failure.reason == "RuntimeError: job 7 failed on purpose"
    assert "failed on purpose" in (failure.traceback or "")


def test_a_crashing_job_fails_alone():
    """A job that kills its worker process is a CRASHED failure; the other jobs finish."""
    with LocalExecutor(2) as ex:
        items = [("crash", 0), ("ok", 3), ("ok", 4), ("crash", 0), ("ok", 5)]
        got = dict(ex.map_unordered(jobs.crash_or_square, items))
    assert [got[i] for i in (1, 2, 4)] == [9, 16, 25]
    for i in (0, 3):
        assert isinstance(got[i], JobFailure) and got[i].kind is FailureKind.CRASHED
        assert "SIGKILL" in got[i].reason


def test_a_broken_pool_is_replaced_and_its_jobs_run_again(monkeypatch):
    """pebble's pool breaks when a worker dies outside any job ("All workers expired": every
    pending future fails with BrokenProcessPool, and ``schedule`` raises RuntimeError from then
    on). That is no job's failure: a new pool runs the unfinished jobs, and a pool that keeps
    breaking ends in a clear error instead of looping."""
    import pebble
    from concurrent.futures.process import BrokenProcessPool

    import ubmd.executors as ex_mod

    made = []

    class FlakyPool:
        """The first ``n_broken`` pools break after running ``good`` jobs each."""

        def __init__(self, n_broken, good, **kwargs):
            self.broken = len(made) < n_broken
            self.good = good
            self.ran = 0
            made.append(self)

        def schedule(self, fn, args=(), timeout=None):
            fut = cf.Future()
            if self.broken and self.ran >= self.good:
                if self.ran >= self.good + 1:
                    raise RuntimeError("Unexpected error within the Pool")
                fut.set_exception(BrokenProcessPool("All workers expired"))
            else:
                fut.set_result(fn(*args))
            self.ran += 1
            return fut

        def stop(self):
            pass

        def join(self):
            pass

    monkeypatch.setattr(pebble, "ProcessPool", lambda **kw: FlakyPool(2, 1, **kw))
    with LocalExecutor(2) as ex:
        got = dict(ex.map_unordered(jobs.square, [1, 2, 3, 4]))
    assert got == {0: 1, 1: 4, 2: 9, 3: 16}  # every job ran once to the end, none failed
    assert len(made) == 3  # two broken pools, replaced
    made.clear()
    monkeypatch.setattr(pebble, "ProcessPool", lambda **kw: FlakyPool(100, 0, **kw))  # no progress
    with LocalExecutor(2) as ex:
        # a stop with instructions, not a bug: the CLI prints it as one line (ubmd.errors)
        with pytest.raises(RunStopped, match="broke 4 times.*ubmd al resume"):
            dict(ex.map_unordered(jobs.square, [1, 2, 3, 4]))
    assert len(made) == ex_mod.MAX_POOL_RESTARTS + 1


def test_timeout_kills_the_job_and_the_rest_go_on():
    t0 = time.perf_counter()
    with LocalExecutor(1) as ex:
        got = dict(ex.map_unordered(jobs.sleep, [60, 0.1], timeout=2.0))
    assert time.perf_counter() - t0 < 30  # the 60 s job was killed, not waited for
    assert got[1] == 0.1
    assert isinstance(got[0], JobFailure) and got[0].kind is FailureKind.TIMEOUT
    assert "limit 2 s" in got[0].reason


def test_next_job_is_handed_out_only_after_a_result_is_consumed(tmp_path):
    """With one worker, job 1 has not started when the caller receives job 0's result: a caller
    that checkpoints each result loses no finished job when it dies."""
    with LocalExecutor(1) as ex:
        it = ex.map_unordered(jobs.mark_started, [(str(tmp_path), k) for k in range(3)])
        first = next(it)
        time.sleep(0.5)
        assert first == (0, 0)
        assert not (tmp_path / "1.started").exists()
        rest = dict(it)
    assert rest == {1: 1, 2: 2}


def test_thread_variables_reach_the_workers():
    """The variables, and what torch makes of them when a job imports it."""
    with LocalExecutor(1, threads=3) as ex:
        assert dict(ex.map_unordered(jobs.thread_env, [0])) == {0: "3"}
    with LocalExecutor(1, threads=1) as ex:  # (torch caps its count at the cores: 2 here)
        assert dict(ex.map_unordered(jobs.torch_threads, [0])) == {0: 1}


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_a_job_that_raises_timeout_error_is_an_error(timeout):
    """Only the executor's own limit is a timeout; a job's TimeoutError is the job's error."""
    with LocalExecutor(1) as ex:
        (failure,) = dict(ex.map_unordered(jobs.raise_timeout, [0], timeout=timeout)).values()
    assert failure.kind is FailureKind.ERROR and "socket timed out" in failure.reason
    assert isinstance(failure.exception, TimeoutError)


def test_inline_restores_the_torch_thread_count():
    import torch

    n = torch.get_num_threads()
    with LocalExecutor(1, inline=True) as ex:
        dict(ex.map_unordered(torch.set_num_threads, [1]))  # as a walker does
    assert torch.get_num_threads() == n


def test_futures_executor_without_a_cap_submits_everything():
    """No cap (Dask's default): every job in flight at once; a limit caps it."""
    with cf.ThreadPoolExecutor(4) as pool:
        t0 = time.perf_counter()
        dict(FuturesExecutor(pool, None).map_unordered(jobs.sleep, [0.4] * 4))
        assert time.perf_counter() - t0 < 1.2
        t0 = time.perf_counter()
        dict(FuturesExecutor(pool, None).map_unordered(jobs.sleep, [0.3] * 4, limit=1))
        assert time.perf_counter() - t0 > 1.1


def test_futures_executor_abandons_a_timed_out_job():
    with cf.ThreadPoolExecutor(2) as pool:
        ex = FuturesExecutor(pool, n_workers=2)
        got = dict(ex.map_unordered(jobs.sleep, [3.0, 0.05], timeout=0.5))
    assert got[1] == 0.05
    assert got[0].kind is FailureKind.TIMEOUT and "abandoned" in got[0].reason


def test_make_executor_refuses_inline_with_dask():
    with pytest.raises(ValueError, match="executor.inline"):
        make_executor("dask", inline=True)
    with pytest.raises(ValueError, match="executor.kind"):
        make_executor("slurm")
    with pytest.raises(ValueError, match="n_workers"):
        LocalExecutor(0)


def test_dask_executor():
    pytest.importorskip("distributed")
    with DaskExecutor(n_workers=1) as ex:
        got = dict(ex.map_unordered(abs, [-3, -4, "x"]))
    assert got[0] == 3 and got[1] == 4
    assert got[2].kind is FailureKind.ERROR and "TypeError" in got[2].reason


def test_a_script_without_main_guard_is_refused_before_workers_start(tmp_path):
    """A driver script without `if __name__ == "__main__":` would be run again by every spawned
    worker, and all its jobs would fail after the workers' start-up: refused at once, saying
    why; with the guard the same script labels."""
    import os
    import subprocess

    body = ("from ase.build import bulk\nimport ubmd\n"
            "res = ubmd.label([bulk('Cu', cubic=True)] * 2, 'emt', n_workers=2)\n"
            "print(res.summary())\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "python"))
    (tmp_path / "bad.py").write_text(body)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "bad.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode != 0 and time.perf_counter() - t0 < 60
    assert "has no `if __name__ == \"__main__\":` block" in p.stderr
    guarded = "def main():\n" + "".join(f"    {line}\n" for line in body.splitlines()) + \
        "\nif __name__ == \"__main__\":\n    main()\n"
    (tmp_path / "good.py").write_text(guarded)
    p = subprocess.run([sys.executable, "good.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0 and "2/2 labelled, 0 failed" in p.stdout, p.stderr[-2000:]
