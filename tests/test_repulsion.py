"""The short-range ZBL baseline (ubmd.model.repulsion): the formula against an independent
implementation, repulsive everywhere, zero where data are, forces by finite differences, in
TorchScript, in members.pt, and in LAMMPS (the pair style uses it through the model file)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces
from ase.data import covalent_radii

from conftest import random_model
from lammps_helpers import requires_plugin
from ubmd.model import MLIP, load_members, save_members


def zbl_reference(r: float, z1: int, z2: int, range_factor: float = 0.75) -> float:
    """The ZBL universal potential with a quintic switch, written out from the literature."""
    a = 0.46850 / (z1 ** 0.23 + z2 ** 0.23)
    x = r / a
    phi = (0.18175 * math.exp(-3.19980 * x) + 0.50986 * math.exp(-0.94229 * x)
           + 0.28022 * math.exp(-0.40290 * x) + 0.02817 * math.exp(-0.20162 * x))
    r_out = range_factor * (covalent_radii[z1] + covalent_radii[z2])
    r_in = 0.5 * r_out
    t = min(max((r - r_in) / (r_out - r_in), 0.0), 1.0)
    return 14.399645 * z1 * z2 / r * phi * (1 - t ** 3 * (10 - 15 * t + 6 * t * t))


def dimer_energy(model: MLIP, r: float, species=(0, 1)) -> torch.Tensor:
    ev = torch.tensor([[r, 0.0, 0.0], [-r, 0.0, 0.0]], dtype=torch.float64)  # edges 0->1, 1->0
    return model.baseline(ev, torch.tensor([[0, 1], [1, 0]]), torch.tensor(species), 2).sum()


def test_pair_energy_is_zbl_with_the_switch():
    m = MLIP([1, 6], 4.0, 4, 6, [8]).double()
    zs = (1, 6)
    for si, sj in ((0, 0), (0, 1), (1, 1)):
        for r in (0.05, 0.2, 0.35, 0.5, 0.6, 0.75, 0.9, 1.2):
            got = float(dimer_energy(m, r, (si, sj)))
            want = zbl_reference(r, zs[si], zs[sj])
            assert got == pytest.approx(want, rel=1e-12, abs=1e-14), (si, sj, r)


def test_repulsive_everywhere_and_zero_beyond_its_range():
    m = MLIP([1, 6, 8], 4.0, 4, 6, [8]).double()
    r = np.linspace(0.02, 2.0, 400)
    for pair in ((0, 0), (0, 1), (1, 1), (1, 2)):
        e = np.array([float(dimer_energy(m, x, pair)) for x in r])
        assert np.all(np.diff(e) <= 1e-12), pair  # energy never rises with distance
        r_out = 0.75 * (covalent_radii[m.atomic_numbers[pair[0]]]
                        + covalent_radii[m.atomic_numbers[pair[1]]])
        assert np.all(e[r >= r_out] == 0.0) and e[0] > 100.0
    # bond lengths are outside the range: C-H 1.09 Å, C-C 1.54 Å, O-H 0.96 Å
    assert float(dimer_energy(m, 1.09, (0, 1))) == 0.0
    assert float(dimer_energy(m, 0.96, (0, 2))) == 0.0


def test_forces_match_central_differences_in_the_switching_region():
    from ubmd.calculator import UBMDCalculator
    from ubmd.model_file.export import ExportedModel
    from ubmd.uncertainty.features import FeatureModel

    model = random_model(zs=(1, 6), cutoff=3.0, seed=3)
    calc = UBMDCalculator(ExportedModel(FeatureModel([model]), None))
    a = Atoms("CHH", positions=[[0, 0, 0], [0.62, 0.0, 0.05], [0.0, 0.35, -0.1]])
    a.calc = calc
    f = a.get_forces()
    fd = calculate_numerical_forces(a, eps=1e-5)
    assert np.abs(f - fd).max() < 1e-6 * max(1.0, np.abs(f).max())


def test_two_atoms_on_one_site_cost_more_than_at_one_angstrom():
    """The case of the issue: without the baseline an untrained or extrapolating model can put
    two atoms on one site below the energy they have at 1 Å."""
    from ubmd.calculator import UBMDCalculator
    from ubmd.model_file.export import ExportedModel
    from ubmd.uncertainty.features import FeatureModel

    def energy(model, r):
        a = Atoms("CH", positions=[[0, 0, 0], [r, 0, 0]])
        a.calc = UBMDCalculator(ExportedModel(FeatureModel([model]), None))
        return a.get_potential_energy()

    with_baseline = random_model(zs=(1, 6), cutoff=3.0, seed=3)
    assert energy(with_baseline, 0.05) > energy(with_baseline, 1.0) + 50.0
    assert energy(with_baseline, 0.3) > energy(with_baseline, 0.6) > energy(with_baseline, 1.0) - 5


def test_torchscript_and_members_keep_it(tmp_path):
    m = random_model(zs=(1, 6, 8), cutoff=3.0, seed=2)
    ev = torch.tensor([[0.3, 0.1, 0.0], [-0.3, -0.1, 0.0], [1.5, 0.0, 0.2]], dtype=torch.float64)
    ei = torch.tensor([[0, 1, 0], [1, 0, 2]])
    sp = torch.tensor([0, 1, 2])
    e = m.atomic_energies(ev, ei, sp, 3)
    assert torch.allclose(torch.jit.script(m).atomic_energies(ev, ei, sp, 3), e, rtol=1e-13)
    save_members([m], tmp_path / "members.pt")
    (back,) = load_members(tmp_path / "members.pt")
    assert back.use_repulsion and back.repulsion.range_factor == 0.75
    assert torch.allclose(back.atomic_energies(ev, ei, sp, 3), e, rtol=1e-13)
    off = MLIP([1, 6, 8], 3.0, 4, 6, [16, 16], repulsion=False).double()
    assert float(off.baseline(ev, ei, sp, 3).abs().sum()) == 0.0
    # members.pt written before the baseline existed: loaded without it
    blob = torch.load(tmp_path / "members.pt", weights_only=False)
    for b in blob:
        b.pop("repulsion")
        b.pop("repulsion_range")
    torch.save(blob, tmp_path / "old.pt")
    assert not load_members(tmp_path / "old.pt")[0].use_repulsion


def test_config_switches_it(tmp_path):
    from ubmd.config import ModelConfig
    from ubmd.model import new_model

    assert new_model({1: 0, 6: 1}, ModelConfig(cutoff=3.0), 0, torch.float64).use_repulsion
    off = new_model({1: 0}, ModelConfig(cutoff=3.0, repulsion=False), 0, torch.float64)
    assert not off.use_repulsion
    wide = new_model({1: 0}, ModelConfig(cutoff=3.0, repulsion_range=1.0), 0, torch.float64)
    assert wide.repulsion.range_factor == 1.0


@pytest.mark.lammps
@requires_plugin
def test_lammps_uses_the_baseline(tmp_path):
    """A structure with close pairs (inside the baseline's range): LAMMPS and the Python
    reference agree on energy and forces, on 1 and 2 ranks, and the baseline is a large part."""
    from lammps_helpers import mpirun, real_model_file, rel_err
    from test_lammps_pair import lammps_single_point, reference

    atoms = Atoms("HCOHCO", positions=[[1.0, 1.0, 1.0], [1.55, 1.0, 1.0], [1.0, 1.5, 1.2],
                                        [4.0, 4.0, 4.0], [4.4, 4.1, 4.0], [5.5, 5.0, 4.5]],
                  cell=[7.0, 7.2, 7.4], pbc=True)
    model = real_model_file(tmp_path / "m.pt", zs=(1, 6, 8), cutoff=3.0)
    ref = reference(model, atoms)
    for n in (1, 2) if mpirun() else (1,):
        d = tmp_path / f"np{n}"
        d.mkdir()
        got = lammps_single_point(model, atoms, d, "uncertainty none", nprocs=n)
        assert rel_err(got["energy"], ref["energy"]) < 1e-10
        assert rel_err(got["forces"], ref["forces"]) < 1e-10
    m = MLIP([1, 6, 8], 3.0, 4, 6, [8]).double()
    assert float(dimer_energy(m, 0.55, (0, 1))) > 1.0  # the C-H pair at 0.55 Å is inside
