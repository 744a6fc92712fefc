"""A terminated campaign leaves no orphan processes behind (walkers, lmp, labellers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest


@pytest.mark.campaign
def test_sigterm_stops_all_descendants(tmp_path):
    # a parent under the guard with a child that itself starts a grandchild in a new session
    # (as the LAMMPS walkers start `lmp`), then SIGTERM to the parent
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import subprocess, sys, time
        from ubmd.signals import terminate_children_on_exit
        with terminate_children_on_exit():
            child = subprocess.Popen([sys.executable, "-c",
                "import subprocess, sys, time; "
                "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
                "start_new_session=True); time.sleep(60)"])
            open({str(tmp_path / 'ready')!r}, 'w').write(str(child.pid))
            time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.time() + 30
    while not (tmp_path / "ready").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    kids = psutil.Process(proc.pid).children(recursive=True)
    assert len(kids) == 2
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    gone, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, [p.pid for p in alive]


@pytest.mark.parametrize("when", ["workers running", "workers starting"])
@pytest.mark.campaign
def test_sigterm_with_process_pool_exits_promptly_without_tracebacks(tmp_path, when):
    # a spawn pool (as the walkers use): unwinding through ProcessPoolExecutor.shutdown after its
    # workers were killed could hang for good (seen with the signal during cf.wait); killing
    # multiprocessing's resource tracker with the workers printed a KeyError traceback per
    # semaphore at exit
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent(f"""
        import concurrent.futures as cf, multiprocessing as mp, os, time
        from ubmd.signals import terminate_children_on_exit

        def job(i):
            open(os.path.join({str(tmp_path)!r}, f"started{{i}}"), "w").close()
            time.sleep(60)

        if __name__ == "__main__":
            with terminate_children_on_exit():
                with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
                    futs = [pool.submit(job, i) for i in range(2)]
                    open(os.path.join({str(tmp_path)!r}, "submitted"), "w").close()
                    cf.wait(futs)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    try:
        ready = ["submitted"] if when == "workers starting" else ["started0", "started1"]
        deadline = time.time() + 120
        while not all((tmp_path / name).exists() for name in ready):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5 if when == "workers starting" else 1.0)
        kids = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # hung: do not leave it behind
            for p in psutil.Process(proc.pid).children(recursive=True):
                p.kill()
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert "received signal 15, stopped" in err, err
    assert "Traceback" not in err, err
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, [p.pid for p in alive]
