"""A terminated campaign leaves no orphan processes behind (walkers, lmp, labellers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil


def test_sigterm_stops_all_descendants(tmp_path):
    # a parent under the guard with a child that itself starts a grandchild in a new session
    # (as the LAMMPS walkers start `lmp`), then SIGTERM to the parent
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import subprocess, sys, time
        from ubmd.al.signals import terminate_children_on_exit
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


def test_sigterm_with_process_pool_leaves_resource_tracker_quiet(tmp_path):
    # a spawn pool (as the walkers use) starts multiprocessing's resource tracker; killing it
    # with the workers printed a KeyError traceback per semaphore at exit
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent(f"""
        import concurrent.futures as cf, multiprocessing as mp, os, time
        from ubmd.al.signals import terminate_children_on_exit

        def job(i):
            open(os.path.join({str(tmp_path)!r}, f"started{{i}}"), "w").close()
            time.sleep(60)

        if __name__ == "__main__":
            with terminate_children_on_exit():
                with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
                    cf.wait([pool.submit(job, i) for i in range(2)])
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not all((tmp_path / f"started{i}").exists() for i in range(2)):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.1)
    kids = psutil.Process(proc.pid).children(recursive=True)
    assert len(kids) == 3  # two workers and the resource tracker
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped 2 child processes" in err, err
    assert "Traceback" not in err and "resource_tracker" not in err, err
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, [p.pid for p in alive]
