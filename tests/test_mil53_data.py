"""The committed MIL-53(Al) benchmark data (examples/mil53/data); the metadynamics bias of the
MIL-53 baseline is tested in tests/test_md_reference.py.

Fast: reads small extxyz files, no reference calculations, no LAMMPS."""

from __future__ import annotations

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


def test_300K_test_set_has_thermal_frames_in_every_pore_state():
    """examples/mil53/data/mil53_test300K_gfn1.extxyz (benchmarks.mil53.make_test_set_300K):
    GFN1-xTB labels of 300 K frames, each state by volume, >= 20 frames per state, near-thermal
    energies (the potential energy of 300 K MD is ~3/2 k_B T = 39 meV/atom above the minimum)."""
    frames = read(DATA / "mil53_test300K_gfn1.extxyz", ":")
    for atoms in frames:
        _check_labels(atoms)
        v = _vpfu(atoms)
        state = "closed" if v < NP_MAX else "intermediate" if v < LP_MIN else "large"
        assert atoms.info["state"] == state and atoms.info["kind"] == f"md300_{state}"
        ref = read(DATA / f"mil53_{'np' if state == 'closed' else 'lp'}_gfn1_2x1x1.extxyz")
        e_above = 1000.0 * (atoms.get_potential_energy() / len(atoms)
                            - ref.get_potential_energy() / len(ref))
        assert atoms.info["e_above_min_meV_atom"] == pytest.approx(e_above, abs=1e-6)
        assert 20.0 < e_above < 80.0
    counts = {s: sum(a.info["state"] == s for a in frames) for s in ("closed", "intermediate", "large")}
    assert min(counts.values()) >= 20, counts
    assert len({a.info["frame"] for a in frames}) == len(frames)
