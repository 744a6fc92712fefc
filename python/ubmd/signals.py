"""Clean termination of a campaign: on SIGTERM/SIGHUP (and Ctrl-C) stop every descendant
process (walker pool workers, their ``lmp``/``mpirun`` children in other sessions, labelling
workers) before exiting, so no orphan keeps running. State on disk is already consistent
(every stage writes atomically), so ``ubmd al resume DIR`` continues from the last finished stage.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def _resource_tracker_pid() -> int | None:
    """PID of multiprocessing's resource tracker, if this process started one.

    It is left alive: it exits by itself when this process does, after releasing the shared
    semaphores of the pools; killed first, it would print a traceback per leaked name."""
    try:
        from multiprocessing import resource_tracker
    except ImportError:  # pragma: no cover
        return None
    return getattr(resource_tracker._resource_tracker, "_pid", None)


def kill_descendants(timeout: float = 3.0) -> int:
    """Terminate (then kill) every descendant of this process except multiprocessing's resource
    tracker; returns how many were stopped."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with the package's dependencies
        import multiprocessing as mp

        kids = mp.active_children()
        for k in kids:
            k.terminate()
        return len(kids)
    me = psutil.Process(os.getpid())
    tracker = _resource_tracker_pid()
    kids = [k for k in me.children(recursive=True) if k.pid != tracker]
    for k in kids:
        with contextlib.suppress(psutil.Error):
            k.terminate()
    _, alive = psutil.wait_procs(kids, timeout=timeout)
    for k in alive:
        with contextlib.suppress(psutil.Error):
            k.kill()
    return len(kids)


@contextlib.contextmanager
def terminate_children_on_exit():
    """Within the block, SIGTERM/SIGHUP/SIGINT stop all descendants and exit with 128 + signum
    (immediately, without unwinding: every stage has already written its state atomically)."""

    def handler(signum, frame):  # noqa: ARG001
        n = kill_descendants()
        print(f"ubmd: received signal {signum}, stopped {n} child processes; "
              "continue with `ubmd al resume DIR`", file=sys.stderr)
        # exit at once: unwinding (SystemExit) joins the executors' worker processes, which
        # can hang for good once they are gone; the state on disk is consistent
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(128 + signum)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        try:
            old[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread: leave the handlers alone
            pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
