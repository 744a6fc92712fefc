"""Reference GFN2-xTB data for alanine dipeptide: Langevin MD at several temperatures.

For each temperature T the script starts from the relaxed C7eq structure
(``benchmarks/data/ala2/ala2_relaxed.xyz``), draws Maxwell-Boltzmann velocities at T, runs
Langevin MD with GFN2-xTB (tblite) forces, discards an equilibration period, and then keeps one
frame every ``--stride-fs`` femtoseconds (default 20 fs, so frames are decorrelated). Every kept
frame carries the GFN2-xTB energy (eV) and forces (eV/Å) of that exact geometry (recomputed by a
cold-start single point), plus
``info["temperature_K"]``, ``info["time_fs"]`` (time after equilibration), ``info["phi"]`` and
``info["psi"]`` (degrees, indices from ``dihedrals.json``).

Broken molecules (any bond from ``dihedrals.json`` longer than ``--max-bond-stretch`` times its
relaxed length) are discarded and counted; the run continues until ``--n-per-temp`` intact frames
are stored (or a cap of 3x the planned steps is hit).

Output: ``OUT/ala2_gfn2_{T}K.extxyz`` (one file per temperature), positions to 1e-6 Å, forces
to 1e-5 eV/Å and energies to 1e-6 eV to keep files small.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.make_ala2_data --n-per-temp 600 \
        --out examples/ala2/data --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ubmd.md.reference import broken_bonds
from ubmd.md.task import dihedral_values

from . import DATA

DATA_DIR = DATA / "ala2"


def _parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-per-temp", type=int, default=600, help="intact frames per temperature")
    p.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 600.0, 1200.0],
                   help="temperatures in K")
    p.add_argument("--out", type=Path, default=Path("examples/ala2/data"), help="output folder")
    p.add_argument("--seed", type=int, default=0, help="RNG seed (offset per temperature)")
    p.add_argument("--start", type=Path, default=DATA_DIR / "ala2_relaxed.xyz")
    p.add_argument("--dihedrals", type=Path, default=DATA_DIR / "dihedrals.json")
    p.add_argument("--timestep-fs", type=float, default=0.5)
    p.add_argument("--friction-per-fs", type=float, default=0.01)
    p.add_argument("--equil-ps", type=float, default=1.0, help="equilibration time discarded")
    p.add_argument("--stride-fs", type=float, default=20.0, help="time between stored frames")
    p.add_argument("--max-bond-stretch", type=float, default=1.5,
                   help="a frame is broken if any bond exceeds this factor x relaxed length")
    p.add_argument("--method", default="GFN2-xTB")
    return p.parse_args(argv)


def run_temperature(temperature_K: float, args, start, dih, rng_seed: int):
    """Langevin MD at one temperature; returns (frames, n_broken, seconds)."""
    from ase import units
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.langevin import Langevin
    from ase.constraints import FixCom
    from ase.md.velocitydistribution import Stationary
    from tblite.ase import TBLite

    try:  # ASE >= 3.28
        from ase.md.velocitydistribution import thermalize_momenta as maxwell_boltzmann
    except ImportError:  # pragma: no cover - older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as maxwell_boltzmann

    bonds = [tuple(b) for b in dih["bonds"]]
    ref = [dih["relaxed_bond_lengths_A"][f"{i}-{j}"] for i, j in bonds]
    atoms = start.copy()
    atoms.set_constraint(FixCom())
    atoms.calc = TBLite(method=args.method, verbosity=0)
    label_calc = TBLite(method=args.method, verbosity=0)
    rng = np.random.default_rng(rng_seed)
    maxwell_boltzmann(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, timestep=args.timestep_fs * units.fs, temperature_K=temperature_K,
                   friction=args.friction_per_fs / units.fs, fixcm=False, rng=rng)

    n_equil = int(round(args.equil_ps * 1000.0 / args.timestep_fs))
    stride = int(round(args.stride_fs / args.timestep_fs))
    t0 = time.perf_counter()
    dyn.run(n_equil)
    frames, n_broken = [], 0
    max_blocks = 3 * args.n_per_temp
    for block in range(max_blocks):
        if len(frames) >= args.n_per_temp:
            break
        dyn.run(stride)
        bad = broken_bonds(atoms, bonds, ref, args.max_bond_stretch)
        if bad:
            n_broken += 1
            print(f"  T={temperature_K:g} K: broken frame at block {block}: {bad}", flush=True)
            continue
        f = atoms.copy()
        f.set_constraint()
        # Label with a fresh calculator (cold SCF start): the MD calculator restarts the SCF from
        # the previous step's wavefunction, which changes forces by ~3e-4 eV/Å; a cold start makes
        # the stored labels reproducible by any later single-point call.
        label_calc.reset()
        e, forces = label_calc.get_potential_energy(f), label_calc.get_forces(f)
        f.calc = SinglePointCalculator(f, energy=float(e), forces=np.array(forces))
        f.info.update(temperature_K=float(temperature_K),
                      time_fs=float((block + 1) * args.stride_fs),
                      phi=dihedral_values(f, [dih["phi"]["indices"]])[0],
                      psi=dihedral_values(f, [dih["psi"]["indices"]])[0],
                      method=f"{args.method} (tblite)")
        frames.append(f)
        if len(frames) % 100 == 0:
            print(f"  T={temperature_K:g} K: {len(frames)} frames, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return frames, n_broken, time.perf_counter() - t0


def write_frames(path: Path, frames) -> None:
    """Compact extxyz readable by ``ase.io.read``: positions (Å) to 1e-6, forces (eV/Å) to 1e-5,
    energy (eV) to 1e-6; info entries (floats/strings) written as key=value."""
    with open(path, "w") as fh:
        for a in frames:
            info = " ".join(
                f"{k}={v:.6f}" if isinstance(v, float) else f'{k}="{v}"' if isinstance(v, str)
                else f"{k}={v}" for k, v in a.info.items())
            fh.write(f"{len(a)}\nProperties=species:S:1:pos:R:3:forces:R:3 "
                     f"energy={a.get_potential_energy():.6f} {info} pbc=\"F F F\"\n")
            for s, r, f in zip(a.get_chemical_symbols(), a.positions, a.get_forces()):
                fh.write(f"{s} {r[0]:.6f} {r[1]:.6f} {r[2]:.6f} {f[0]:.5f} {f[1]:.5f} {f[2]:.5f}\n")


def main(argv=None) -> int:
    args = _parse_args(argv)
    from ase.io import read

    start = read(args.start)
    start.calc = None
    dih = json.loads(args.dihedrals.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    for k, T in enumerate(args.temperatures):
        frames, n_broken, secs = run_temperature(T, args, start, dih, args.seed + 1000 * k)
        path = args.out / f"ala2_gfn2_{int(round(T))}K.extxyz"
        write_frames(path, frames)
        phi = np.array([f.info["phi"] for f in frames])
        print(f"T={T:g} K: {len(frames)} frames -> {path} ({path.stat().st_size / 1e6:.2f} MB), "
              f"{n_broken} broken frames discarded, {secs:.0f} s, "
              f"phi>0 fraction {np.mean(phi > 0):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
