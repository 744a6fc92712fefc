"""The GPU check of issue #25 (``benchmarks/gpu_check.py``, run on a GPU machine by
``scripts/gpu_check.sh``; docs/performance.md) exercised on the CPU, so that it cannot rot while
no GPU is lent: its dry run compares the CPU with the CPU at tiny sizes through every stage, and
a stage that fails is reported while the others still run. As the other benchmark tests, in
subprocesses from the repository root (the test suite imports no benchmark module)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lammps_helpers import PLUGIN

ROOT = Path(__file__).resolve().parents[1]


def gpu_check(tmp_path: Path, *args, timeout: float = 300) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "work"), *map(str, args)],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    path = tmp_path / "out" / "gpu_check.json"
    return proc, json.loads(path.read_text()) if path.exists() else {}


def test_scripts_parse():
    for script in ("scripts/gpu_check.sh", "scripts/gpu_wheels.sh"):
        proc = subprocess.run(["bash", "-n", script], check=False, cwd=ROOT, capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr


def test_a_failing_stage_is_reported_and_the_others_run(tmp_path):
    """agree_calc without the files of stage models fails, env before it still runs; exit status
    1 and the reason in the JSON. With no time left every stage is skipped, which is not ok."""
    proc, res = gpu_check(tmp_path, "--dry-run", "--stages", "env,agree_calc")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    st = res["stages"]
    assert st["env"]["status"] == "ok" and st["env"]["device"] == "cpu"
    assert st["agree_calc"]["status"] == "failed"
    assert "Error" in st["agree_calc"]["error"]
    assert "not ok: agree_calc (failed)" in proc.stdout
    proc, res = gpu_check(tmp_path, "--dry-run", "--stages", "env,train", "--budget", "0")
    assert proc.returncode == 1
    assert {r["status"] for r in res["stages"].values()} == {"skipped"}


@pytest.mark.campaign
def test_dry_run_every_stage(tmp_path):
    """CPU against CPU: every stage runs, the two sides agree exactly, LAMMPS agrees with the
    calculator, the step timings and training throughputs are there, and the table is printed."""
    stages = "env,models,agree_calc,train,step_calc"
    if PLUGIN.exists():
        stages += ",agree_lammps,step_lammps"
    proc, res = gpu_check(tmp_path, "--dry-run", "--stages", stages)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    st = res["stages"]
    assert all(r["status"] == "ok" for r in st.values()), st
    assert st["models"]["agree_atoms"] == 76
    for case in st["agree_calc"]["cases"].values():
        assert case["worst"] < 1e-12 and case["bias_forces_rms"] > 0
    assert {r["device"] for c in st["train"]["cases"].values() for r in c["runs"]} == {"cpu"}
    assert all(r["structures_per_s"] > 0 for c in st["train"]["cases"].values() for r in c["runs"])
    assert st["step_calc"]["device"]["s_per_eval"] > 0 and st["step_calc"]["cpu"]["s_per_eval"] > 0
    if "agree_lammps" in st:
        cases = st["agree_lammps"]["cases"]
        assert all(cases[k]["worst"] < 1e-8 for k in cases if k.endswith("lammps_vs_calc"))
        assert all(cases[k]["worst"] < 1e-12 for k in cases if not k.endswith("lammps_vs_calc"))
        for role in ("device", "cpu"):
            modes = st["step_lammps"]["devices"][role]["modes"]
            assert set(modes) == {"plain", "bias_sketch", "bias_last_layer"}
            assert all(m["ms_per_step"] > 0 for m in modes.values())
    for name in stages.split(","):
        assert name in proc.stdout
