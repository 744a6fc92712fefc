"""The committed MIL-53(Al) benchmark data (examples/mil53/data) and the metadynamics bias.

Fast: reads small extxyz files, no reference calculations, no LAMMPS."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from ubmd.analysis import volume_per_fu

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "mil53" / "data"
FORMULA = "C64H40Al8O40"  # 2x1x1 cell: two Al4(OH)4(BDC)4 units
NP_MAX, LP_MIN = 1150.0, 1350.0  # A^3 per unit: np ~ 1000, lp ~ 1490 with GFN1-xTB


def _vpfu(atoms) -> float:
    return volume_per_fu(atoms.cell, len(atoms), atoms_per_fu=76)


def _check_labels(atoms) -> None:
    assert atoms.get_chemical_formula() == FORMULA
    assert atoms.pbc.all()
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    s = atoms.get_stress(voigt=False)
    assert np.isfinite(e) and -65.0 < e / len(atoms) < -63.0  # GFN1-xTB, eV/atom
    assert f.shape == (len(atoms), 3) and np.isfinite(f).all()
    assert np.abs(f).max() < 20.0  # the AL loop's label filter
    assert np.allclose(s, s.T) and np.isfinite(s).all()
    assert atoms.info["volume_per_fu"] == pytest.approx(_vpfu(atoms), rel=1e-8)


@pytest.mark.parametrize("state", ["lp", "np"])
def test_start_structures(state):
    atoms = read(DATA / f"mil53_{state}_gfn1_2x1x1.extxyz")
    _check_labels(atoms)
    v = _vpfu(atoms)
    assert (v > LP_MIN) if state == "lp" else (v < NP_MAX)
    # relaxed: small residual forces and stress (|sigma| < 0.1 GPa)
    assert np.linalg.norm(atoms.get_forces(), axis=1).max() < 0.1
    assert np.abs(atoms.get_stress()).max() * 160.21766 < 0.1


def test_start_structures_share_atom_order():
    lp = read(DATA / "mil53_lp_gfn1_2x1x1.extxyz")
    np_ = read(DATA / "mil53_np_gfn1_2x1x1.extxyz")
    assert (lp.numbers == np_.numbers).all()


def test_test_set_spans_both_pore_states():
    frames = read(DATA / "mil53_test_gfn1.extxyz", ":")
    assert len(frames) >= 60
    for atoms in frames:
        _check_labels(atoms)
    v = np.array([_vpfu(a) for a in frames])
    assert (v < NP_MAX).sum() >= 10 and (v > LP_MIN).sum() >= 10
    assert ((v > NP_MAX) & (v < LP_MIN)).sum() >= 3  # interpolated frames between the states
    kinds = {a.info["kind"] for a in frames}
    assert kinds == {"perturb_lp", "perturb_np", "interp"}
    assert len({a.info["frame"] for a in frames}) == len(frames)


def _metad_module():
    path = ROOT / "benchmarks" / "mil53" / "metadynamics_baseline.py"
    spec = importlib.util.spec_from_file_location("mil53_metad", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_well_tempered_bias():
    mod = _metad_module()
    mtd = mod.WellTemperedMetad(height=0.1, sigma=20.0, biasfactor=10.0, temperature=300.0,
                                wall_lo=900.0, wall_hi=1600.0, wall_k=1e-3)
    assert mtd(1200.0) == (0.0, 0.0)
    heights = [mtd.deposit(1200.0) for _ in range(5)]
    assert heights[0] == pytest.approx(0.1)
    assert all(b < a for a, b in zip(heights, heights[1:]))  # well-tempered: shrinking hills
    kT_dT = mod.KB_EV * 300.0 * 9.0
    assert heights[1] == pytest.approx(0.1 * np.exp(-heights[0] / kT_dT))
    for s in (1150.0, 1210.0, 880.0, 1650.0):  # derivative (walls included) vs finite difference
        h = 1e-3
        fd = (mtd(s + h)[0] - mtd(s - h)[0]) / (2 * h)
        assert mtd(s)[1] == pytest.approx(fd, rel=1e-6, abs=1e-10)
    assert mtd(880.0)[1] < 0 < mtd(1650.0)[1]  # walls push back inside
    zero = mod.WellTemperedMetad(0.0, 20.0, 10.0, 300.0)
    assert zero.deposit(1000.0) == 0.0 and zero(1000.0) == (0.0, 0.0)
