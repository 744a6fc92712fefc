"""User data the other tests do not bring: constraints in the file, unreadable files, NaN labels,
mixed periodicity without a full cell, cells much smaller than the cutoff, skewed cells, one-atom
structures, ASE trajectory and database input (numbers against ASE's neighbour list, brute force
and finite differences of the energy)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.io import write
from ase.neighborlist import neighbor_list as ase_neighbor_list

from conftest import random_model
from ubmd import keys as K
from ubmd.calculator import UBMDCalculator
from ubmd.data import GraphDataset, read_structures, species_map_from
from ubmd.evaluation import evaluate_model_file
from ubmd.model_file.export import ExportedModel, export_model
from ubmd.uncertainty.features import FeatureModel
from ubmd.neighbours import neighbour_list


@pytest.fixture(scope="module")
def cu_model_file(tmp_path_factory):
    """An untrained float64 Al/Cu model file (cutoff 5 Å), no uncertainty."""
    path = tmp_path_factory.mktemp("heldout") / "m.pt"
    export_model(ExportedModel(FeatureModel([random_model(zs=(13, 29), cutoff=5.0, seed=4)]),
                               None), path)
    return path


def _emt(a: Atoms) -> Atoms:
    a.calc = EMT()
    a.get_potential_energy()
    a.get_forces()
    if a.pbc.all():
        a.get_stress()
    return a


def _edges(i, j, s):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, np.asarray(s).tolist())))


# ------------------------------------------------------------------ evaluation with constraints
def test_evaluate_compares_unconstrained_forces_with_the_labels(tmp_path, cu_model_file):
    """A slab with FixAtoms on its bottom layer (kept by extxyz and .traj): the force labels are
    the raw calculator forces, so the errors are those of the model's raw forces, not of forces
    zeroed on the fixed atoms (which under-reported the force RMSE)."""
    s = fcc111("Cu", (2, 2, 3), vacuum=5.0)
    s.rattle(0.1, seed=1)
    s.set_constraint(FixAtoms(indices=[a.index for a in s if a.tag == 3]))
    _emt(s)
    ref_forces = s.calc.results["forces"]
    b = s.copy()
    b.set_constraint()
    b.calc = UBMDCalculator(cu_model_file)
    rmse = float(np.sqrt(((b.get_forces() - ref_forces) ** 2).mean()))
    for name in ("slab.extxyz", "slab.traj"):
        write(tmp_path / name, [s])
        frames = read_structures(tmp_path / name)
        assert frames[0].constraints  # the constraint survives the file
        res = evaluate_model_file(cu_model_file, frames, progress=False)
        assert res["forces_rmse"] == pytest.approx(rmse, rel=1e-6)


# ------------------------------------------------------------------ files that cannot be read
@pytest.mark.parametrize("content", ["", "2\nProperties=species:S:1:pos:R:3\nCu 0 0 0\n",
                                     "\x7fELF\x02\x01\x01 not a structure"])
def test_unreadable_structure_files_are_one_line_errors(tmp_path, cu_model_file, capsys, content):
    from ubmd.cli.evaluate import main as evaluate_main

    suffix = ".bin" if content.startswith("\x7f") else ".extxyz"
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match="cannot read structures from .*bad"):
        read_structures(path)
    assert evaluate_main([str(cu_model_file), str(path)]) == 2
    assert "ubmd evaluate: error: cannot read structures" in capsys.readouterr().err


# ------------------------------------------------------------------ non-finite labels
def test_non_finite_labels_are_errors_naming_the_structure(tmp_path, cu_model_file):
    """A NaN energy or force label stopped training only after it (a NaN loss, then 'residuals
    contains 1 non-finite value' in the calibration) and gave NaN evaluation errors; now it is
    an error naming the structure and the label. The unused stress of a slab is not checked."""
    frames = [_emt(bulk("Cu", "fcc", a=3.61, cubic=True)) for _ in range(4)]
    for a in frames:
        a.rattle(0.02, seed=5)
        _emt(a)
    sm = species_map_from(frames)
    bad_e = [a.copy() for a in frames]
    for a, b in zip(frames, bad_e):
        b.calc = SinglePointCalculator(b, **a.calc.results)
    bad_e[2].calc.results["energy"] = float("nan")
    with pytest.raises(ValueError, match=r"structure 2 \(Cu4\): non-finite .*energy 'energy'"):
        GraphDataset(bad_e, 4.0, sm)
    with pytest.raises(ValueError, match=r"structure 2 .*non-finite"):
        evaluate_model_file(cu_model_file, bad_e, progress=False)
    bad_f = [a.copy() for a in frames]
    bad_f[1].arrays["dft_forces"] = frames[1].get_forces().copy()
    bad_f[1].arrays["dft_forces"][3, 1] = np.inf
    with pytest.raises(ValueError, match=r"structure 1 .*forces 'dft_forces' for atoms \[3\]"):
        GraphDataset(bad_f, 4.0, sm, label_keys={"forces_key": "dft_forces"})
    bad_s = [a.copy() for a in frames]
    bad_s[0].info["virial"] = np.full(9, np.nan)
    with pytest.raises(ValueError, match=r"structure 0 .*virial 'virial'"):
        GraphDataset(bad_s, 4.0, sm)
    slab = _emt(fcc111("Cu", (2, 2, 2), vacuum=4.0))
    slab.info["stress"] = np.full(6, np.nan)  # not periodic in z: its stress is never used
    g = GraphDataset([slab], 4.0, sm).graphs[0]
    assert K.ENERGY in g and K.VIRIAL not in g


# ------------------------------------------------------------------ neighbour lists
def _brute(pos, cell, pbc, rc, n=5):
    out = []
    for S in itertools.product(*[range(-n, n + 1) if p else [0] for p in pbc]):
        sh = np.array(S) @ cell
        for i in range(len(pos)):
            for j in range(len(pos)):
                if (i != j or any(S)) and np.linalg.norm(pos[j] - pos[i] + sh) < rc:
                    out.append((i, j, S))
    return sorted(out)


@pytest.mark.parametrize("cell,pbc", [
    ([[0, 0, 0], [0, 0, 3.0], [0, 0, 0]], [False, True, False]),  # wire along z, pbc F T F
    ([[0, 0, 2.0], [0, 0, 3.0], [0, 0, 0]], [False, True, False]),  # + a parallel non-periodic a
    ([[1.5, 1.5, 0], [0, 1.5, 1.5], [0, 0, 0]], [True, True, False]),  # skewed slab, no c
    ([[2.5, 0, 0.3], [0, 0, 0], [0.2, 0.1, 2.7]], [True, False, True]),
    ([[2.5, 0, 0], [0, 2.6, 0], [1.0, 1.0, 0]], [True, True, False]),  # c in the periodic plane
])
def test_neighbours_with_mixed_pbc_and_partial_cells(cell, pbc):
    """Periodic vectors along any axis, non-periodic ones missing or parallel to them: the box
    is completed by orthogonal vectors (it raised 'cannot build a box' before)."""
    pos = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 1.5], [0.1, -0.4, 3.9]])
    cell = np.array(cell, dtype=float)
    i, j, s = neighbour_list(pos, cell, pbc, 4.0)
    assert _edges(i, j, s) == _brute(pos, cell, pbc, 4.0)
    d = np.linalg.norm(pos[j] - pos[i] + s @ cell, axis=1)
    assert d.max() < 4.0


def _triclinic():
    cell = np.array([[3.0, 0, 0], [2.9, 0.5, 0], [2.8, 0.4, 0.6]]) * 1.3
    return Atoms("CuAl", scaled_positions=[[0, 0, 0], [0.5, 0.3, 0.2]], cell=cell, pbc=True)


@pytest.mark.parametrize("make", [
    lambda: bulk("Cu", "fcc", a=3.61),  # 1 atom, 42 neighbour images within 5 Å
    lambda: bulk("Cu", "fcc", a=3.61).repeat((1, 1, 2)),
    _triclinic,  # highly skewed cell
    lambda: Atoms("Cu2", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]],
                  cell=[[3, 0, 0], [0, 3, 0], [0, 0, 0.8]], pbc=True),  # thinner than r_c / 6
    lambda: fcc111("Cu", (2, 2, 2), vacuum=4.0, a=3.61),  # pbc T T F
])
def test_small_and_skewed_cells_match_ase_and_finite_differences(cu_model_file, make):
    a = make()
    if len(a) > 1:
        a.rattle(0.05, seed=2)
        a[0].symbol = "Al"
    i, j, s = neighbour_list(a.positions, np.asarray(a.cell), a.pbc, 5.0)
    assert _edges(i, j, s) == _edges(*ase_neighbor_list("ijS", a, 5.0))
    a.calc = UBMDCalculator(cu_model_file)
    f = a.get_forces()
    fd = calculate_numerical_forces(a, eps=1e-5)
    assert np.abs(f - fd).max() < 1e-7 * max(1.0, np.abs(f).max())
    if a.pbc.all():
        st = a.get_stress(voigt=False)
        sd = calculate_numerical_stress(a, eps=1e-6, voigt=False)
        assert np.abs(st - sd).max() < 1e-6 * max(1.0, np.abs(st).max())


def test_isolated_and_single_atoms(cu_model_file):
    """No neighbour within the cutoff: the energy is the per-species shift, zero forces and
    stress, with and without a cell."""
    calc = UBMDCalculator(cu_model_file)
    energies = []
    for a in (Atoms("Cu", positions=[[0, 0, 0]]), Atoms("Cu2", positions=[[0, 0, 0], [9, 0, 0]]),
              Atoms("Cu", cell=[8, 8, 8], pbc=True)):
        a.calc = calc
        energies.append(a.get_potential_energy() / len(a))
        assert np.abs(a.get_forces()).max() == 0.0
        if a.pbc.all():
            assert np.abs(a.get_stress()).max() == 0.0
    assert energies[0] == pytest.approx(energies[1], abs=1e-12)
    assert energies[0] == pytest.approx(energies[2], abs=1e-12)


# ------------------------------------------------------------------ ASE trajectory / database
def test_traj_and_db_input_give_the_extxyz_numbers(tmp_path, cu_model_file):
    frames = [_emt(bulk("Cu", "fcc", a=3.61, cubic=True).repeat((1, 1, 2))) for _ in range(2)]
    for k, a in enumerate(frames):
        a.rattle(0.05, seed=k)
        _emt(a)
    frames.append(_emt(fcc111("Al", (2, 2, 2), vacuum=4.0)))
    res = {}
    for name in ("d.extxyz", "d.traj", "d.db"):
        write(tmp_path / name, frames)
        res[name] = evaluate_model_file(cu_model_file, read_structures(tmp_path / name),
                                        progress=False)
    for name in ("d.traj", "d.db"):
        for key in ("energy_rmse", "forces_rmse", "stress_rmse"):
            assert res[name][key] == pytest.approx(res["d.extxyz"][key], rel=1e-6)


# ------------------------------------------------------------------ ubmd md start structures
def test_md_refuses_a_one_atom_start_and_npt_for_a_slab(tmp_path, cu_model_file, capsys):
    """One atom: ASE thermalises 0 degrees of freedom (NaN velocities, 'Eigenvalues did not
    converge' in the barostat or NaN positions); a slab has no NPT. Both are refused up front."""
    from ubmd.cli.md import main as md_main

    write(tmp_path / "one.extxyz", bulk("Cu", "fcc", a=3.61))
    write(tmp_path / "slab.extxyz", fcc111("Cu", (2, 2, 2), vacuum=4.0))
    common = ["--steps", "4", "--sample-every", "2", "--log-every", "1"]
    for ens in ("nvt", "npt"):
        assert md_main([str(cu_model_file), str(tmp_path / "one.extxyz"), "--out",
                        str(tmp_path / f"o_{ens}"), "--ensemble", ens] + common) == 2
        assert "at least 2 atoms" in capsys.readouterr().err
    assert md_main([str(cu_model_file), str(tmp_path / "slab.extxyz"), "--out",
                    str(tmp_path / "s"), "--ensemble", "npt"] + common) == 2
    assert "periodic in x, y and z" in capsys.readouterr().err


def test_negative_index_past_the_start_is_an_error(tmp_path):
    from ubmd.data import read_structures

    frames = [bulk("Cu", "fcc", a=3.6 + 0.01 * k) * (2, 1, 1) for k in range(3)]
    write(tmp_path / "three.extxyz", frames)
    got = read_structures(tmp_path / "three.extxyz", index="-3")
    assert len(got) == 1 and got[0].cell[0, 1] == pytest.approx(frames[0].cell[0, 1])
    assert read_structures(tmp_path / "three.extxyz", index="-1")[0].cell[0, 1] == \
        pytest.approx(frames[2].cell[0, 1])
    with pytest.raises(ValueError, match=r"index -4 selects no frame .*3 frames"):
        read_structures(tmp_path / "three.extxyz", index="-4")
