"""The MLIP: exact derivatives, symmetries, locality, periodic images, TorchScript, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from conftest import random_model, small_molecule
from ubmd.calculator import UBMDCalculator
from ubmd.model_file.export import ExportedModel, export_model
from ubmd.model_file import model_info, read_metadata
from ubmd.model_file.load import load_model_file
from ubmd.uncertainty.features import FeatureModel


def calc_for(model, **kw):
    return UBMDCalculator(ExportedModel(FeatureModel([model]), None), **kw)


@pytest.fixture(scope="module")
def cu_model():
    return random_model(zs=(13, 29), cutoff=4.0, seed=1)


def cu_cell(rattle=0.1, seed=0):
    a = bulk("Cu", "fcc", a=3.61, cubic=True)
    a.set_chemical_symbols(["Cu", "Al", "Cu", "Cu"])
    a.set_cell(a.cell @ np.array([[1.0, 0.05, 0.0], [0.0, 1.0, -0.03], [0.02, 0.0, 1.0]]),
               scale_atoms=True)
    a.rattle(rattle, seed=seed)
    return a


def test_forces_match_central_differences(cu_model):
    a = cu_cell()  # 4 atoms, cell < 2 r_c: several images of each neighbour
    a.calc = calc_for(cu_model)
    f = a.get_forces()
    fd = a.calc.calculate_numerical_forces(a, d=1e-5)
    assert np.abs(f).max() > 1e-3
    rel = np.abs(f - fd).max() / np.abs(f).max()
    assert rel < 1e-6, rel


def test_stress_matches_strain_differences(cu_model):
    a = cu_cell(seed=4)
    a.calc = calc_for(cu_model)
    s = a.get_stress(voigt=False)
    # central differences of E under symmetric strain (I + eps), positions scaled with the cell
    e0 = a.get_cell().copy()
    vol = a.get_volume()
    fd = np.zeros((3, 3))
    h = 1e-6
    for i in range(3):
        for j in range(3):
            es = []
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[i, j] += 0.5 * sign * h
                eps[j, i] += 0.5 * sign * h
                b = a.copy()
                b.calc = calc_for(cu_model)
                b.set_cell(e0 @ (np.eye(3) + eps), scale_atoms=True)
                es.append(b.get_potential_energy())
            fd[i, j] = (es[0] - es[1]) / (2 * h) / vol
    assert np.abs(s).max() > 1e-4
    rel = np.abs(s - fd).max() / np.abs(s).max()
    assert rel < 1e-6, rel


def test_invariances():
    m = random_model(seed=2)
    a = small_molecule()
    a.calc = calc_for(m)
    e, f = a.get_potential_energy(), a.get_forces()
    rot = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    b = a.copy()
    b.positions = a.positions @ rot.T + np.array([1.0, -2.0, 3.0])
    b.calc = calc_for(m)
    scale = max(1.0, np.abs(f).max())
    assert abs(b.get_potential_energy() - e) < 1e-10 * max(1.0, abs(e))
    assert np.abs(b.get_forces() - f @ rot.T).max() < 1e-10 * scale
    perm = np.random.default_rng(1).permutation(len(a))
    c = a[perm]
    c.calc = calc_for(m)
    assert abs(c.get_potential_energy() - e) < 1e-10 * max(1.0, abs(e))
    assert np.abs(c.get_forces() - f[perm]).max() < 1e-10 * scale


def test_replica_is_extensive(cu_model):
    a = cu_cell(seed=7)
    a.calc = calc_for(cu_model)
    b = a.repeat((2, 2, 2))
    b.calc = calc_for(cu_model)
    assert abs(b.get_potential_energy() - 8 * a.get_potential_energy()) < 1e-9 * abs(
        b.get_potential_energy()) + 1e-9
    assert np.allclose(b.get_stress(), a.get_stress(), atol=1e-10)
    assert np.allclose(b.get_forces()[: len(a)], a.get_forces(), atol=1e-10)


def test_strict_locality():
    """Moving an atom beyond r_c of atom k leaves E_k unchanged (one-cutoff ghosts suffice)."""
    m = random_model(zs=(1, 6), cutoff=3.0, seed=3)
    a = Atoms("CHHC", positions=[[0, 0, 0], [1.0, 0, 0], [2.5, 0.3, 0], [6.0, 0, 0]])
    a.calc = calc_for(m)
    e0 = a.get_potential_energies()[0]
    b = a.copy()
    b.positions[3] += [0.3, 0.2, 0.1]  # stays > 3 Å from atom 0
    b.calc = calc_for(m)
    assert abs(b.get_potential_energies()[0] - e0) < 1e-14


def test_mixed_pbc_slab():
    m = random_model(zs=(13, 29), cutoff=4.0, seed=5)
    a = cu_cell(seed=2).repeat((1, 1, 2))
    a.pbc = (True, True, False)
    a.calc = calc_for(m)
    f = a.get_forces()
    fd = a.calc.calculate_numerical_forces(a, d=1e-5)
    assert np.abs(f - fd).max() / np.abs(f).max() < 1e-6


def test_torchscript_matches_eager(tmp_path, cu_model):
    a = cu_cell(seed=9).repeat((2, 1, 1))
    em = ExportedModel(FeatureModel([cu_model]), None)
    a.calc = UBMDCalculator(em)
    e, f = a.get_potential_energy(), a.get_forces()
    export_model(em, tmp_path / "m.pt", torch.float64)
    b = a.copy()
    b.calc = UBMDCalculator(tmp_path / "m.pt")
    assert abs(b.get_potential_energy() - e) < 1e-12 * max(1.0, abs(e))
    assert np.abs(b.get_forces() - f).max() < 1e-12
    assert np.abs(b.get_stress() - a.get_stress()).max() < 1e-12


def test_float32_close_to_float64(tmp_path, cu_model):
    a = cu_cell(seed=11)
    em = ExportedModel(FeatureModel([cu_model]), None)
    export_model(em, tmp_path / "m32.pt", torch.float32)
    a.calc = UBMDCalculator(tmp_path / "m32.pt")
    f32 = a.get_forces()
    b = a.copy()
    b.calc = calc_for(cu_model)
    f64 = b.get_forces()
    assert np.abs(f32 - f64).max() < 1e-4 * max(1.0, np.abs(f64).max())


def test_bad_inputs(tmp_path, cu_model):
    with pytest.raises(FileNotFoundError, match="ubmd export"):
        UBMDCalculator(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a ubmd model file"):
        UBMDCalculator(tmp_path / "junk.pt")
    a = cu_cell()
    a.set_chemical_symbols(["Cu", "Cu", "Ni", "Cu"])
    a.calc = calc_for(cu_model)
    with pytest.raises(ValueError, match="Ni"):
        a.get_potential_energy()
    b = cu_cell()
    b.positions[1, 0] = np.nan
    b.calc = calc_for(cu_model)
    with pytest.raises(ValueError, match="NaN"):
        b.get_potential_energy()


def test_old_format_version_is_refused(tmp_path, cu_model):
    em = ExportedModel(FeatureModel([cu_model]), None)
    export_model(em, tmp_path / "m.pt")
    module, meta = load_model_file(tmp_path / "m.pt")
    import json

    meta["format_version"] = 0
    torch.jit.save(module, str(tmp_path / "old.pt"),
                   _extra_files={"metadata.json": json.dumps(meta), "format_version": "0"})
    with pytest.raises(ValueError, match="re-export"):
        load_model_file(tmp_path / "old.pt")
    with pytest.raises(ValueError, match="re-export"):
        read_metadata(tmp_path / "old.pt")


def test_read_metadata_without_torch_equals_the_loaded_metadata(tmp_path, cu_model):
    """model_info/read_metadata read the zip archive's metadata.json: the same dict as a full
    TorchScript load, in a process that never imports torch; bad files fail the same way."""
    import json
    import subprocess
    import sys

    em = ExportedModel(FeatureModel([cu_model]), None)
    path = tmp_path / "model with space.pt"
    export_model(em, path)
    _, meta = load_model_file(path)
    assert read_metadata(path) == meta
    info = model_info(path)
    assert info.species == ("Al", "Cu") and info.atomic_numbers == (13, 29)
    assert info.cutoff == pytest.approx(cu_model.cutoff) and not info.has_uncertainty
    code = ("import json, sys; from ubmd.model_file import read_metadata; "
            "m = read_metadata(sys.argv[1]); print(json.dumps({'torch': 'torch' in sys.modules, "
            "'cutoff': m['cutoff']}))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == {"torch": False, "cutoff": meta["cutoff"]}
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a ubmd model file"):
        read_metadata(tmp_path / "junk.pt")
    import zipfile

    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as z:
        z.writestr("x/data.pkl", b"")
    with pytest.raises(ValueError, match="has no ubmd metadata"):
        read_metadata(tmp_path / "plain.zip")
    with pytest.raises(ValueError, match="is a directory"):
        read_metadata(tmp_path)


@pytest.mark.parametrize("n_species", [1, 3])
def test_radial_pair_mixing_paths_agree(n_species):
    """The two ways to mix the radial basis by species pair (one GEMM to all pair channels,
    or each edge's own pair weights) give the same descriptor and edge gradient."""
    from ubmd.neighbours import neighbour_list

    zs = (1, 6, 8)[:n_species]
    mol = small_molecule()
    mol.numbers = np.array([zs[k % n_species] for k in range(len(mol))])
    m = random_model(zs=zs, seed=3)
    i, j, s = neighbour_list(mol.positions, np.zeros((3, 3)), False, m.cutoff)
    ei = torch.tensor(np.stack([i, j]))
    sp = torch.tensor([zs.index(int(z)) for z in mol.numbers])
    weights = torch.randn(m.descriptor.dim, dtype=torch.float64)
    out = {}
    for gemm in (True, False):
        m.descriptor.pair_gemm = gemm
        ev = torch.tensor(mol.positions[j] - mol.positions[i]).requires_grad_(True)
        d = m.descriptor(ev, ei, sp, len(mol))
        (g,) = torch.autograd.grad((d * weights).sum(), ev)
        out[gemm] = (d.detach(), g)
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[True][1], out[False][1], rtol=1e-12, atol=1e-12)
    assert out[True][1].abs().max() > 1e-3


def test_descriptor_halves_and_pair_mixing_choice():
    """forward = invariants(moments(...)) (the edge-level and atom-level halves a profile can time
    apart), and the pair-mixing route is a constructor choice (default: by species count)."""
    from ubmd.model import MLIP, GaussianMoments
    from ubmd.neighbours import neighbour_list

    assert GaussianMoments(2, 4.0).pair_gemm and not GaussianMoments(4, 4.0).pair_gemm
    assert not GaussianMoments(2, 4.0, pair_gemm=False).pair_gemm
    assert MLIP([1, 6, 7, 8], 4.0, 4, 6, [8], pair_gemm=True).descriptor.pair_gemm
    m = random_model(seed=5)
    mol = small_molecule()
    zs = list(m.atomic_numbers)
    i, j, s = neighbour_list(mol.positions, np.zeros((3, 3)), False, m.cutoff)
    ev = torch.tensor(mol.positions[j] - mol.positions[i])
    ei = torch.tensor(np.stack([i, j]))
    sp = torch.tensor([zs.index(int(z)) for z in mol.numbers])
    d = m.descriptor
    flat, n_slots = d.slot_index(ei[0], len(mol))
    a = d.moments(ev, ei, sp, len(mol), flat, n_slots)
    assert a.shape == (len(mol), d.n_radial, 20)
    torch.testing.assert_close(d.invariants(a), d(ev, ei, sp, len(mol)), rtol=0, atol=0)
    scripted = torch.jit.script(d)  # the halves are TorchScript methods too
    torch.testing.assert_close(scripted.invariants(scripted.moments(ev, ei, sp, len(mol), flat,
                                                                     n_slots)), d.invariants(a))


def test_calculator_neighbour_list_is_a_hook(cu_model):
    """A subclass can time or replace the neighbour list (benchmarks/ase_vs_lammps.py)."""
    calls = []

    class Counting(UBMDCalculator):
        def neighbours(self, positions, cell, pbc):
            calls.append(len(positions))
            return super().neighbours(positions, cell, pbc)

    a, b = cu_cell(), cu_cell()
    a.calc = calc_for(cu_model)
    b.calc = Counting(ExportedModel(FeatureModel([cu_model]), None))
    np.testing.assert_array_equal(a.get_forces(), b.get_forces())
    assert calls == [len(b)]
