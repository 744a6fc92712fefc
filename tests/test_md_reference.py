"""MD with the reference potential (ubmd.md.reference: resumable walkers) and the well-tempered
metadynamics bias (ubmd.md.metadynamics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from ubmd.md.metadynamics import KB_EV, WellTemperedMetad
from ubmd.md.reference import (broken_bonds, load_reference_walker, reference_walker_summary,
                               run_reference_walker)

ALA2 = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "ala2"


def _walker(path, steps, seed, chunk=20):
    dih = json.loads((ALA2 / "dihedrals.json").read_text())
    bonds = [tuple(b) for b in dih["bonds"]]
    return run_reference_walker(
        path, read(ALA2 / "ala2_relaxed.xyz"), "gfn2-xtb", 1200.0, steps, chunk, [seed, 1200, 0],
        log_every=10, dihedrals=[dih["phi"]["indices"], dih["psi"]["indices"]], bonds=bonds,
        bond_lengths=[dih["relaxed_bond_lengths_A"][f"{i}-{j}"] for i, j in bonds])


def test_resumed_walker_equals_uninterrupted(tmp_path):
    pytest.importorskip("tblite")
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    full = _walker(a, 60, 3)
    _walker(b, 20, 3)  # "interrupted" after one chunk
    part = load_reference_walker(b)
    assert int(part["steps"]) == 20 and len(part["cvs"]) == 2
    resumed = _walker(b, 60, 3)
    za, zb = load_reference_walker(a), load_reference_walker(b)
    assert full["steps"] == resumed["steps"] == 60
    assert len(za["cvs"]) == 6  # every 10 steps, step 0 not traced
    np.testing.assert_allclose(za["positions"], zb["positions"], atol=1e-8)
    np.testing.assert_allclose(za["cvs"], zb["cvs"], atol=1e-6)
    assert reference_walker_summary(za) == full and full["n_broken_frames"] == 0
    assert 300 < full["mean_temperature_K"] < 3000
    # another seed gives another trajectory (the seed reaches the dynamics)
    _walker(c, 20, 4)
    assert np.abs(load_reference_walker(c)["cvs"] - za["cvs"][:2]).max() > 1e-4
    assert load_reference_walker(tmp_path / "none.npz") is None


def test_broken_bonds():
    atoms = read(ALA2 / "ala2_relaxed.xyz")
    r01 = atoms.get_distance(0, 1)
    assert broken_bonds(atoms, [(0, 1)], [r01], 1.5) == []
    assert broken_bonds(atoms, [(0, 1)], [r01 / 2], 1.5) == [(0, 1, pytest.approx(r01))]


def test_well_tempered_bias():
    mtd = WellTemperedMetad(height=0.1, sigma=20.0, biasfactor=10.0, temperature=300.0,
                            wall_lo=900.0, wall_hi=1600.0, wall_k=1e-3)
    assert mtd(1200.0) == (0.0, 0.0)
    heights = [mtd.deposit(1200.0) for _ in range(5)]
    assert heights[0] == pytest.approx(0.1)
    assert all(b < a for a, b in zip(heights, heights[1:]))  # well-tempered: shrinking hills
    kT_dT = KB_EV * 300.0 * 9.0
    assert heights[1] == pytest.approx(0.1 * np.exp(-heights[0] / kT_dT))
    for s in (1150.0, 1210.0, 880.0, 1650.0):  # derivative (walls included) vs finite difference
        h = 1e-3
        fd = (mtd(s + h)[0] - mtd(s - h)[0]) / (2 * h)
        assert mtd(s)[1] == pytest.approx(fd, rel=1e-6, abs=1e-10)
    assert mtd(880.0)[1] < 0 < mtd(1650.0)[1]  # walls push back inside
    zero = WellTemperedMetad(0.0, 20.0, 10.0, 300.0)
    assert zero.deposit(1000.0) == 0.0 and zero(1000.0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="biasfactor"):
        WellTemperedMetad(0.1, 20.0, 1.0, 300.0)
