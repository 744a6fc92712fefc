"""Quick start: label a small Cu/Al data set with EMT, train a model with a calibrated
uncertainty, export it, and run a short uncertainty-biased NVT MD with it through ASE.

    .venv/bin/python examples/quickstart.py [--out runs/quickstart]

What each step does: docs/quickstart.md; the same functions for a whole active-learning round:
docs/python.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

import ubmd


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
        sym = a.get_chemical_symbols()
        for i in rng.choice(len(a), 8, replace=False):
            sym[i] = "Al"
        a.set_chemical_symbols(sym)
        eps = 0.02 * rng.standard_normal((3, 3))
        a.set_cell(a.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        a.rattle(0.1, seed=int(rng.integers(1 << 30)))
        a.calc = EMT()
        a.get_potential_energy(), a.get_stress()
        frames.append(a)
    return frames


def main(args=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--steps", type=int, default=300)
    a = p.parse_args(args)
    frames = make_data(48)
    summary = ubmd.train({
        "model": {"cutoff": 4.5, "n_radial": 6, "n_basis": 8, "hidden": [32, 32]},
        "training": {"max_epochs": 60, "batch_size": 8, "lr": 5e-3, "dtype": "float32",
                     "progress": False},
        "uncertainty": {"kind": "posterior", "features": "last_layer"},
        "data": {"valid_fraction": 0.2}}, frames=frames, output=a.out)
    e = summary["errors_valid"]
    print(f"validation errors: energy {1000 * e['energy_rmse']:.2f} meV/atom, "
          f"forces {e['forces_rmse']:.3f} eV/Å")
    model = Path(a.out) / "model.pt"
    for tau, label in ((0.0, "unbiased"), (0.25, "biased")):
        atoms = frames[0].copy()
        atoms.calc = ubmd.UBMDCalculator(model, tau_forces=tau, window=20)
        MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(1))
        dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=600, friction=0.01 / units.fs,
                       fixcm=False)
        us = []
        dyn.attach(lambda: us.append(atoms.calc.results["uncertainty"]), interval=1)
        dyn.run(a.steps)
        print(f"{label:9s} MD: mean u = {np.mean(us):.4f} eV/atom, "
              f"max atomic u = {atoms.calc.results['atomic_uncertainty'].max():.3f} eV/Å")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
