"""Shared fixtures: tiny datasets and tiny models (seconds, not minutes), and the test tiers.

Tiers (pytest markers, registered in pyproject.toml): ``cpp`` (the C++ core through ctest, and
Python against C++), ``lammps`` (cross-layer: LAMMPS with the plugin against the Python
reference, 1/2/4 MPI ranks), ``campaign`` (whole AL campaigns, benchmark drivers), ``unit``
(everything else). ``slow`` marks single tests over ~20 s. The fast inner loop is
``pytest -m "not campaign and not slow"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from ubmd.config import TrainRunConfig, from_dict

# small models on a shared 2-core machine: one intra-op thread is much faster (see config.py)
torch.set_num_threads(1)

#: test files whose every test belongs to a tier (other tests are marked one by one)
FILE_TIERS = {
    "cpp": ("test_cpp_core.py", "test_bias_mirror.py"),
    "lammps": ("test_lammps_pair.py", "test_lammps_decks.py", "test_lammps_inputs.py",
               "test_lammps_npt_outputs.py", "test_lammps_blas.py", "test_lammps_examples.py"),
    "campaign": ("test_benchmark_smoke.py",),
}
TIERS = ("cpp", "lammps", "campaign")


def pytest_collection_modifyitems(config, items):
    """Each test gets its tier: its file's (FILE_TIERS), its own mark, else ``unit``."""
    for item in items:
        name = Path(str(item.fspath)).name
        for tier, files in FILE_TIERS.items():
            if name in files:
                item.add_marker(getattr(pytest.mark, tier))
        if not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(pytest.mark.unit)


def emt_frames(n: int = 24, seed: int = 0, repeat=(2, 2, 2), rattle: float = 0.08) -> list[Atoms]:
    """Rattled, strained fcc Cu/Al cells labelled with EMT (energy, forces, stress)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
        syms = a.get_chemical_symbols()
        for idx in rng.choice(len(a), size=len(a) // 4, replace=False):
            syms[idx] = "Al"
        a.set_chemical_symbols(syms)
        eps = 0.02 * rng.standard_normal((3, 3))
        a.set_cell(a.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        a.rattle(rattle, seed=int(rng.integers(1 << 30)))
        a.calc = EMT()
        a.get_potential_energy()
        a.get_stress()
        frames.append(a)
    return frames


@pytest.fixture(scope="session")
def cu_frames():
    return emt_frames()


@pytest.fixture(scope="session")
def tiny_cfg_dict(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_model")
    return {
        "model": {"cutoff": 4.0, "n_radial": 4, "n_basis": 6, "hidden": [16, 16]},
        "training": {"max_epochs": 15, "batch_size": 8, "lr": 5e-3, "dtype": "float64",
                     "progress": False, "patience": 50},
        "uncertainty": {"kind": "posterior", "features": "last_layer"},
        "data": {"valid_fraction": 0.25, "split_seed": 0},
        "output": str(out),
    }


@pytest.fixture(scope="session")
def tiny_trained(cu_frames, tiny_cfg_dict):
    """A tiny model trained for a few epochs on EMT Cu/Al data, exported with posterior u."""
    from ubmd.training import train_from_config

    cfg = from_dict(TrainRunConfig, tiny_cfg_dict)
    summary = train_from_config(cfg, cu_frames)
    return cfg, summary


def random_model(zs=(1, 6, 7, 8), cutoff=4.0, seed=0, hidden=(16, 16), n_radial=4, n_basis=6):
    """An untrained float64 MLIP with non-trivial weights (for exactness tests)."""
    from ubmd.model import MLIP

    torch.manual_seed(seed)
    m = MLIP(list(zs), cutoff, n_radial, n_basis, list(hidden), seed=seed).double()
    with torch.no_grad():
        for layer in m.layers:
            layer.bias.normal_()
        m.species_scale.copy_(torch.linspace(0.5, 1.5, len(zs), dtype=torch.float64))
        m.species_shift.copy_(torch.linspace(-2.0, 1.0, len(zs), dtype=torch.float64))
        m.desc_inv_std.fill_(0.3)
    return m.eval()


def synthetic_campaign(root, n_rounds: int = 4, n_new: int = 5):
    """A campaign directory with finished rounds 0..n_rounds-1 and nothing else: round k has a
    data set of 4 (k + 1) H2 molecules, n_new relabelled structures and a summary (for the
    campaign readers, branching and the benchmark drivers; no models, no walkers)."""
    import json

    from ase.io import write

    for k in range(n_rounds):
        d = root / f"round_{k:03d}"
        d.mkdir(parents=True)
        write(d / "dataset.extxyz", [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * i]])
                                     for i in range(4 * (k + 1))])
        write(d / "labelled.extxyz", [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.8]])] * n_new)
        (d / "summary.json").write_text(json.dumps({"round": k, "n_new_labels": n_new,
                                                    "n_dataset": 4 * (k + 1)}))
    return root


def ethanol_edges(periodic: bool, n_centres: int | None = None, zs=(1, 6, 8), cutoff: float = 4.0):
    """Edges of a rattled ethanol (in a small periodic cell if ``periodic``) as model inputs:
    (edge vectors float64 [E, 3], edge index [2, E], species by ``zs``, number of centres); with
    ``n_centres`` only the edges of the first n_centres atoms, the others being neighbours only
    (ghosts)."""
    from ubmd.neighbours import neighbour_list

    a = molecule("CH3CH2OH")
    a.rattle(0.05, seed=2)
    if periodic:
        a.set_cell([5.5, 6.0, 5.0])
        a.center()
        a.pbc = True
    i, j, s = neighbour_list(a.positions, np.asarray(a.cell), a.pbc, cutoff)
    ev = a.positions[j] - a.positions[i] + s @ np.asarray(a.cell)
    smap = {z: k for k, z in enumerate(zs)}
    sp = torch.tensor([smap[int(z)] for z in a.numbers])
    n = len(a) if n_centres is None else n_centres
    keep = i < n
    return (torch.tensor(ev[keep], dtype=torch.float64), torch.tensor(np.stack([i[keep], j[keep]])),
            sp, n)


def small_molecule() -> Atoms:
    a = molecule("CH3CH2OH")
    a.rattle(0.05, seed=3)
    return a
