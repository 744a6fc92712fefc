"""Tests of ubmd.labelling: labels equal direct calculator calls; failures are recorded, not raised."""

from __future__ import annotations

import concurrent.futures as cf
import math
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from ubmd.labelling import (
    BUILTINS,
    check_structure,
    LABEL_TIME,
    POOL_INDEX,
    filter_by_max_force,
    label_structures,
    make_calculator,
)

FLAKY = {"import": f"{Path(__file__).parent / 'fixtures' / 'labelling_calcs.py'}:FlakyEMT"}
ALA2 = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "ala2" / "ala2_relaxed.xyz"


def metal_cells(n: int = 3, seed: int = 0) -> list[Atoms]:
    """Small rattled, strained fcc Cu / Cu-Al / Al cells (4-8 atoms)."""
    rng = np.random.default_rng(seed)
    cells = []
    for k in range(n):
        a = bulk("Cu" if k % 3 != 2 else "Al", "fcc", a=3.7 if k % 3 == 2 else 3.61, cubic=True)
        if k % 3 == 1:
            a = a.repeat((2, 1, 1))
            a.symbols[[1, 5]] = "Al"
        strain = np.eye(3) + 0.02 * rng.standard_normal((3, 3))
        a.set_cell(a.cell[:] @ (0.5 * (strain + strain.T)), scale_atoms=True)
        a.positions += 0.05 * rng.standard_normal(a.positions.shape)
        cells.append(a)
    return cells


def direct(atoms: Atoms, calc) -> tuple[float, np.ndarray, np.ndarray | None]:
    a = atoms.copy()
    a.calc = calc
    stress = a.get_stress() if a.pbc.all() else None
    return a.get_potential_energy(), a.get_forces(), stress


# ----------------------------------------------------------------------------------------------
def test_make_calculator_builtins_imports_and_errors():
    assert {"gfn2-xtb", "gfn1-xtb", "emt", "lj"} <= set(BUILTINS)
    assert isinstance(make_calculator("emt"), EMT)
    assert isinstance(make_calculator({"name": "EMT"}), EMT)
    lj = make_calculator({"import": "ase.calculators.lj:LennardJones",
                          "kwargs": {"sigma": 2.0, "epsilon": 0.1}})
    assert lj.parameters.sigma == 2.0
    xtb = make_calculator({"name": "gfn1-xtb", "kwargs": {"accuracy": 0.5}})
    assert xtb.parameters.method == "GFN1-xTB" and xtb.parameters.verbosity == 0
    assert xtb.parameters.accuracy == 0.5
    assert make_calculator(FLAKY).__class__.__name__ == "FlakyEMT"

    with pytest.raises(ValueError, match="gfn2-xtb"):
        make_calculator({"name": "dft-magic"})
    with pytest.raises(ImportError, match="gfn2-xtb"):
        make_calculator({"import": "no_such_package_xyz.calc:Calc"})
    with pytest.raises(ImportError, match="gfn2-xtb"):
        make_calculator({"import": "ase.calculators.emt:NoSuchClass"})
    with pytest.raises(ValueError, match="exactly one"):
        make_calculator({"name": "emt", "import": "ase.calculators.emt:EMT"})
    with pytest.raises(ImportError, match="gfn2-xtb"):  # checked before starting any worker
        label_structures(metal_cells(1), {"import": "no_such_package_xyz:Calc"})
    with pytest.raises(ValueError, match="properties"):
        label_structures(metal_cells(1), "emt", properties=("energy", "dipole"))


def test_emt_labels_equal_direct_calls_and_survive_extxyz(tmp_path):
    cells = metal_cells(3)
    cells[0].info["tag"] = "keep-me"
    seen = []
    res = label_structures(cells, {"name": "emt"}, n_workers=2, callback=seen.append)
    assert res.failures == [] and len(res.labelled) == 3
    assert sorted(o.index for o in seen) == [0, 1, 2] and all(o.ok for o in seen)
    assert res.labelled_indices == [0, 1, 2]
    assert res.labelled[0].info["tag"] == "keep-me"
    assert cells[0].calc is None  # inputs untouched
    for k, (orig, lab) in enumerate(zip(cells, res.labelled)):
        e, f, s = direct(orig, EMT())
        assert lab.info[POOL_INDEX] == k and lab.info[LABEL_TIME] >= 0.0
        np.testing.assert_allclose(lab.positions, orig.positions)
        assert lab.get_potential_energy() == pytest.approx(e, abs=1e-10)
        np.testing.assert_allclose(lab.get_forces(), f, atol=1e-10)
        np.testing.assert_allclose(lab.get_stress(), s, atol=1e-12)
    assert set(res.timings) == {0, 1, 2}

    path = tmp_path / "labels.extxyz"
    write(path, res.labelled)
    back = read(path, ":")
    for lab, b in zip(res.labelled, back):
        assert b.get_potential_energy() == pytest.approx(lab.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(b.get_forces(), lab.get_forces(), atol=1e-8)
        np.testing.assert_allclose(b.get_stress(), lab.get_stress(), atol=1e-10)
        assert b.info[POOL_INDEX] == lab.info[POOL_INDEX]


def test_gfn2_xtb_alanine_dipeptide_equals_direct_tblite():
    from tblite.ase import TBLite

    mol = read(ALA2)
    mol.calc = None
    mol.positions += 0.02 * np.random.default_rng(1).standard_normal(mol.positions.shape)
    res = label_structures([mol], "gfn2-xtb", n_workers=1)
    assert res.failures == [], res.failures
    lab = res.labelled[0]
    e, f, _ = direct(mol, TBLite(method="GFN2-xTB", verbosity=0))
    assert lab.get_potential_energy() == pytest.approx(e, abs=1e-6)
    np.testing.assert_allclose(lab.get_forces(), f, atol=1e-6)
    assert "stress" not in lab.calc.results  # molecule: no stress


def test_periodic_xtb_stress_matches_finite_differences():
    """Stress of a periodic GFN1-xTB label (ASE convention, eV/Å^3, Voigt) vs central differences
    of labelled energies of strained copies (all through the labeller: single-threaded workers)."""
    cell = bulk("Si", "diamond", a=5.6)
    cell.positions[1] += [0.05, -0.03, 0.02]
    d, voigt = 1e-5, [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    strained = []
    for i, j in voigt:
        for sign in (1.0, -1.0):
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = sign * (d if i == j else d / 2)  # engineering shear = d
            a = cell.copy()
            a.set_cell(cell.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
            strained.append(a)
    res = label_structures([cell] + strained, {"name": "gfn1-xtb"}, n_workers=2,
                           properties=("energy", "forces", "stress"))
    assert res.failures == [], res.failures
    e = np.array([a.get_potential_energy() for a in res.labelled[1:]])
    num = (e[0::2] - e[1::2]) / (2 * d * cell.get_volume())
    stress = res.labelled[0].get_stress()
    assert np.abs(stress).max() > 1e-3  # a non-trivial check
    np.testing.assert_allclose(stress, num, atol=2e-5)
    assert "stress" in res.labelled[1].calc.results


def test_failing_jobs_are_recorded_and_skipped():
    cells = metal_cells(7, seed=3)
    modes = {1: "raise", 2: "segfault", 3: "sleep", 4: "nan", 5: "shape"}
    for k, mode in modes.items():
        cells[k].info["misbehave"] = mode
    seen = []
    res = label_structures(cells, FLAKY, n_workers=2, timeout=2.0, callback=seen.append)
    assert res.labelled_indices == [0, 6]
    reasons = {f["index"]: f["reason"] for f in res.failures}
    assert set(reasons) == {1, 2, 3, 4, 5}
    # typed kinds: only non-finite numbers are a property of the structure (not retried)
    kinds = {f["index"]: f["kind"] for f in res.failures}
    assert kinds == {1: "error", 2: "crashed", 3: "timeout", 4: "rejected", 5: "error"}
    assert "forces have shape" in reasons[5]
    assert "RuntimeError" in reasons[1] and "SCF not converged" in reasons[1]
    assert "SIGSEGV" in reasons[2]
    assert reasons[3].startswith("timeout")
    assert "non-finite forces" in reasons[4]
    assert all(f["elapsed"] >= 0 for f in res.failures)
    timeout_fail = next(f for f in res.failures if f["index"] == 3)
    assert 2.0 <= timeout_fail["elapsed"] < 30.0
    for k in (0, 6):
        lab = res.labelled[[0, 6].index(k)]
        e, f, _ = direct(cells[k], EMT())
        assert lab.get_potential_energy() == pytest.approx(e, abs=1e-10)
        np.testing.assert_allclose(lab.get_forces(), f, atol=1e-10)
    assert sorted(o.index for o in seen) == list(range(7))
    assert {o.index for o in seen if not o.ok} == {1, 2, 3, 4, 5}


def test_custom_executor_records_failures_and_timeouts():
    cells = metal_cells(4, seed=5)
    cells[1].info["misbehave"] = "raise"
    cells[2].info.update(misbehave="sleep", sleep_s=1.5)
    with cf.ThreadPoolExecutor(max_workers=3) as pool:
        res = label_structures(cells, FLAKY, n_workers=3, timeout=0.5, executor=pool)
    assert res.labelled_indices == [0, 3]
    reasons = {f["index"]: f["reason"] for f in res.failures}
    assert "SCF not converged" in reasons[1]
    assert reasons[2].startswith("timeout")
    e, f, s = direct(cells[3], EMT())
    np.testing.assert_allclose(res.labelled[1].get_forces(), f, atol=1e-10)


def test_filter_by_max_force():
    frames = []
    for k, fmax in enumerate([0.5, 25.0, 19.9, -21.0]):
        a = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
        forces = np.zeros((2, 3))
        forces[1, 2] = fmax
        a.calc = SinglePointCalculator(a, energy=0.0, forces=forces)
        a.info[POOL_INDEX] = 10 + k
        frames.append(a)
    bad = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    bad.calc = SinglePointCalculator(bad, energy=0.0, forces=np.full((2, 3), np.nan))
    unlabelled = Atoms("H")
    kept, dropped = filter_by_max_force(frames + [bad, unlabelled])
    assert [a.info[POOL_INDEX] for a in kept] == [10, 12]
    by_index = {d["index"]: d for d in dropped}
    assert set(by_index) == {11, 13, 4, 5}
    assert by_index[11]["max_force"] == pytest.approx(25.0)
    assert by_index[13]["max_force"] == pytest.approx(21.0) and "> 20" in by_index[13]["reason"]
    assert "non-finite" in by_index[4]["reason"] and math.isnan(by_index[4]["max_force"])
    assert by_index[5]["reason"] == "no force label"
    kept5, dropped5 = filter_by_max_force(frames, max_force=1.0)
    assert len(kept5) == 1 and len(dropped5) == 3
    with pytest.raises(ValueError):
        filter_by_max_force(frames, max_force=0.0)


def test_fractional_initial_charges_are_refused_for_xtb():
    mol = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    mol.set_initial_charges([0.41, 0.41, -0.8])  # partial charges, sum 0.02
    with pytest.raises(ValueError, match="initial_charges"):
        check_structure("gfn2-xtb", mol)
    check_structure({"name": "gfn2-xtb", "kwargs": {"charge": 0}}, mol)  # explicit: fine
    check_structure("emt", mol)  # not tblite: not checked
    mol.set_initial_charges([0.4, 0.4, -0.8])  # sums to an integer: same electron count
    check_structure("gfn2-xtb", mol)
