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
