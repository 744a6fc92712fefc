"""GFN1-xTB start structures for the MIL-53(Al) benchmark: large-pore (lp) and narrow-pore (np)
2x1x1 supercells (152 atoms, Al8 C64 H40 O40), cell + positions relaxed.

Both states are built in the SAME cell topology and atom order (the lp conventional cell doubled
along the chain axis a), so that np <-> lp interpolations (cell and fractional coordinates) are
meaningful:

* lp: the lp conventional cell with the GFN1-xTB fixed-cell-relaxed positions
  (benchmarks/data/mil53/derived_..._GFN1-xTB_fixedcell_relaxed.extxyz), repeated 2x1x1;
* np: the same structure with the pore rhombus closed by an affine map of the cell
  (b: 16.68 -> 19.0 A, c: 12.81 -> 7.8 A, close to the chain-lattice rectangle 18.98 x 7.62 A of
  the experimental np structure MIL-53Al_np_P21c.extxyz), positions first relaxed at that fixed
  cell (the affine map distorts the linkers; started directly with a free cell, the stress of the
  distorted linkers opened the pore all the way towards lp), then cell + positions relaxed.
  Result (GFN1-xTB): no minimum near the experimental np volume in this 2-chain cell; the pore
  closes further to a closed-pore (cp) minimum at ~747 A^3 per unit, 22 meV/atom BELOW lp
  (dispersion-dominated). The files keep the name "np" (narrow/closed pore). (The experimental np cell itself, P21/c with
  Z = 8, has 4 chains per cell and a 6.57 A chain axis; at the Gamma point it would need 304 atoms.)

Relaxation: ase.filters.FrechetCellFilter (exp_cell_factor 10, so fmax 0.05 eV/A on the cell
degrees of freedom is a residual stress of ~0.03 GPa) + BFGS, bounded steps, trajectory
checkpointed every step (restarts continue from the last frame).

Usage:  OMP_NUM_THREADS=1 nice -n 5 python -m benchmarks.mil53.relax_start_structures \
            [--work runs/mil53] [--out examples/mil53/data] [--which lp np] [--steps-lp 80 --steps-np 150]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402
from ase.filters import FrechetCellFilter  # noqa: E402
from ase.io import read, write  # noqa: E402
from ase.io.trajectory import Trajectory  # noqa: E402
from ase.optimize import BFGS  # noqa: E402

from ubmd.analysis import volume_per_fu as cell_volume_per_fu  # noqa: E402
from ubmd.labelling import make_calculator  # noqa: E402

from .. import DATA as BENCH_DATA  # noqa: E402

LP_SRC = BENCH_DATA / "mil53" / "derived_MIL-53Al_lp_conventional_GFN1-xTB_fixedcell_relaxed.extxyz"
NP_CHAIN_RECT = (19.0, 7.8)  # long, short chain-lattice rectangle sides (exp. np: 18.98, 7.62 A)
N_FU = 4  # Al(OH)(BDC) per Al4(OH)4(BDC)4 unit (76 atoms)
ATOMS_PER_FU = 76


def volume_per_fu(atoms) -> float:
    """Cell volume per Al4(OH)4(BDC)4 unit (A^3) -- the paper's breathing CV."""
    return cell_volume_per_fu(atoms.cell, len(atoms), atoms_per_fu=ATOMS_PER_FU)


def start_lp():
    return read(LP_SRC).repeat((2, 1, 1))


def start_np():
    atoms = start_lp()
    cell = np.array(atoms.cell)
    cell[1] *= NP_CHAIN_RECT[0] / np.linalg.norm(cell[1])
    cell[2] *= NP_CHAIN_RECT[1] / np.linalg.norm(cell[2])
    atoms.set_cell(cell, scale_atoms=True)
    return atoms


def relax(name: str, atoms, work: Path, steps: int, fmax: float, cell: bool = True) -> tuple:
    traj_path = work / f"relax_{name}.traj"
    log_path = work / f"relax_{name}.log"
    done = 0
    if traj_path.exists() and traj_path.stat().st_size > 0:
        try:
            frames = read(traj_path, ":")
            if frames:
                atoms = frames[-1].copy()
                done = len(frames)
                print(f"[{name}] resuming from frame {done} of {traj_path}", flush=True)
        except Exception as exc:  # truncated trajectory: start again
            print(f"[{name}] cannot read {traj_path} ({exc}); starting again", flush=True)
    atoms.calc = make_calculator({"name": "gfn1-xtb"})
    filt = FrechetCellFilter(atoms, exp_cell_factor=10.0) if cell else atoms
    opt = BFGS(filt, logfile=str(log_path), trajectory=Trajectory(str(traj_path), "a", atoms),
               maxstep=0.15)
    t0 = time.perf_counter()
    converged = opt.run(fmax=fmax, steps=max(steps - done, 0))
    wall = time.perf_counter() - t0
    n_calls = opt.nsteps + 1
    return atoms, bool(converged), wall, n_calls, done + opt.nsteps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/mil53")
    ap.add_argument("--out", default="examples/mil53/data")
    ap.add_argument("--which", nargs="+", default=["lp", "np"])
    ap.add_argument("--steps-lp", type=int, default=80)
    ap.add_argument("--steps-np", type=int, default=150)
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--steps-fixed", type=int, default=40, help="np fixed-cell pre-relaxation")
    ap.add_argument("--fmax-fixed", type=float, default=0.3)
    args = ap.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = work / "relax_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in args.which:
        start = start_lp() if name == "lp" else start_np()
        steps = args.steps_lp if name == "lp" else args.steps_np
        print(f"[{name}] start V/fu = {volume_per_fu(start):.1f} A^3", flush=True)
        if name == "np":
            start, conv0, wall0, n0, tot0 = relax("np_fixedcell", start, work, args.steps_fixed,
                                                  args.fmax_fixed, cell=False)
            e0 = float(start.calc.results["energy"])
            start = start.copy()
            summary["np_fixedcell"] = {"converged": conv0, "steps_total": tot0,
                                       "wall_s_this_run": wall0, "energy_eV": e0}
            print(f"[np] fixed-cell stage: {summary['np_fixedcell']}", flush=True)
        atoms, conv, wall, n_calls, total = relax(name, start, work, steps, args.fmax)
        res = atoms.calc.results
        e, f, s = float(res["energy"]), np.array(res["forces"]), np.array(res["stress"])
        final = atoms.copy()
        final.calc = SinglePointCalculator(final, energy=e, free_energy=e, forces=f, stress=s)
        final.info.clear()
        final.info.update({"volume_per_fu": volume_per_fu(atoms), "state": name,
                           "source": f"{LP_SRC.name} x2x1x1"
                           + (", pore closed by an affine cell map" if name == "np" else "")
                           + ", cell+positions relaxed with GFN1-xTB (tblite, Gamma point)",
                           "label_method": "GFN1-xTB", "relax_converged": conv,
                           "relax_steps": total})
        write(out / f"mil53_{name}_gfn1_2x1x1.extxyz", final, format="extxyz")
        summary[name] = {
            "converged": conv, "steps_total": total, "wall_s_this_run": wall,
            "s_per_call": wall / max(n_calls, 1), "energy_eV": e, "energy_per_atom_eV": e / len(atoms),
            "volume_per_fu_A3": volume_per_fu(atoms), "cellpar": atoms.cell.cellpar().round(4).tolist(),
            "max_force_eV_A": float(np.abs(f).max()), "fmax_eV_A": float(np.linalg.norm(f, axis=1).max()),
            "stress_GPa": (s * 160.21766).round(4).tolist(),
        }
        summary_path.write_text(json.dumps(summary, indent=1))
        print(f"[{name}] {json.dumps(summary[name])}", flush=True)
    if "lp" in summary and "np" in summary:
        n = 152
        de = (summary["np"]["energy_eV"] - summary["lp"]["energy_eV"])
        print(f"E(np) - E(lp) = {de:.4f} eV = {1000 * de / n:.2f} meV/atom = "
              f"{de / (n / 76 * N_FU) * 96.485:.2f} kJ/mol per Al(OH)(BDC)", flush=True)


if __name__ == "__main__":
    main()
