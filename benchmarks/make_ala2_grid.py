"""A uniform test set for alanine dipeptide: frames over the whole (phi, psi) plane, GFN2-xTB.

The plane is cut into ``--cells`` x ``--cells`` squares (30° for 12). In every square a centre
(phi_c, psi_c) is drawn uniformly (seeded), the relaxed C7eq structure is rotated there (the
atoms on one side of the N-CA bond for phi, of the CA-C bond for psi), both dihedrals are held
fixed (``ase.constraints.FixInternals``: the frame's phi, psi are the centre's), the clashes of
the rotation are relaxed (FIRE, at most ``--relax-steps``), and Langevin MD at ``--temperature``
(0.5 fs steps, Maxwell-Boltzmann start) is equilibrated for ``--equil-fs`` and then sampled
``--frames`` times every ``--stride-fs``. So the set covers every region of the plane -- C7eq,
C5/beta (wrapped at psi = ±180), alpha_R, C7ax, alpha_L, and the phi ≈ 0 barrier -- with the
other degrees of freedom thermal at 300 K, which is what "uniformly accurate" is judged on.

Each frame carries a cold-start GFN2-xTB single point (energy eV, forces eV/Å) and ``info``:
``phi``, ``psi`` (degrees, [-180, 180)), ``cell`` (square index), ``region`` (``phi<0`` or
``phi>0``), ``c7ax_al`` (True in 30 < phi < 110: the C7ax and alpha_L basins and the slopes
between them), ``temperature_K``. Frames whose bonds broke (> 1.5x relaxed length) are dropped.

Resumable: every square is one job (:mod:`ubmd.executors`, ``--workers`` processes) that writes
``WORK/cell_NNN.extxyz``; a rerun computes only the missing squares, then gathers them into
``--out``.

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.make_ala2_grid --workers 2 \\
        --out examples/ala2/data/ala2_gfn2_grid.extxyz
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from pathlib import Path

import numpy as np

from . import DATA, ROOT

DATA_DIR = DATA / "ala2"
C7AX_AL = (30.0, 110.0)  # phi range (degrees) of the C7ax / alpha_L basins


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=12, help="squares per dihedral (12: 30°)")
    p.add_argument("--frames", type=int, default=2, help="frames per square")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--equil-fs", type=float, default=100.0)
    p.add_argument("--stride-fs", type=float, default=75.0)
    p.add_argument("--relax-steps", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "ala2_grid")
    p.add_argument("--out", type=Path, default=ROOT / "examples" / "ala2" / "data"
                   / "ala2_gfn2_grid.extxyz")
    p.add_argument("--method", default="GFN2-xTB")
    return p.parse_args(argv)


def side_of(bonds: list, a: int, b: int, n: int) -> list[int]:
    """The atoms connected to ``b`` without crossing the bond a-b (the side that rotates)."""
    nbr = {i: set() for i in range(n)}
    for i, j in bonds:
        nbr[i].add(j)
        nbr[j].add(i)
    seen, todo = {b}, deque([b])
    while todo:
        k = todo.popleft()
        for m in nbr[k]:
            if m not in seen and not (k == b and m == a):
                seen.add(m)
                todo.append(m)
    if a in seen:
        raise ValueError(f"bond {a}-{b} is in a ring: cannot rotate one side")
    return sorted(seen)


def wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def cell_job(job: dict) -> dict:
    """One square: rotate, relax under the dihedral constraints, MD, labelled frames."""
    from ase import units
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixInternals
    from ase.io import read, write
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.optimize import FIRE
    from tblite.ase import TBLite

    from ubmd.md.reference import broken_bonds

    t0 = time.perf_counter()
    dih = job["dihedrals"]
    phi_i, psi_i = dih["phi"]["indices"], dih["psi"]["indices"]
    bonds = [tuple(b) for b in dih["bonds"]]
    ref = [dih["relaxed_bond_lengths_A"][f"{i}-{j}"] for i, j in bonds]
    atoms = read(job["start"])
    n = len(atoms)
    phi_c, psi_c = job["centre"]
    atoms.set_dihedral(*phi_i, phi_c, indices=side_of(bonds, phi_i[1], phi_i[2], n))
    atoms.set_dihedral(*psi_i, psi_c, indices=side_of(bonds, psi_i[1], psi_i[2], n))
    atoms.set_constraint(FixInternals(dihedrals_deg=[[atoms.get_dihedral(*phi_i), phi_i],
                                                     [atoms.get_dihedral(*psi_i), psi_i]]))
    atoms.calc = TBLite(method=job["method"], verbosity=0)
    FIRE(atoms, logfile=None).run(fmax=0.5, steps=job["relax_steps"])
    rng = np.random.default_rng(job["seed"])
    thermalize_momenta(atoms, job["temperature"], rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=job["temperature"],
                   friction=0.01 / units.fs, fixcm=False, rng=rng)
    dyn.run(int(round(job["equil_fs"] / 0.5)))
    frames, n_broken = [], 0
    for k in range(job["frames"]):
        dyn.run(int(round(job["stride_fs"] / 0.5)))
        if broken_bonds(atoms, bonds, ref, 1.5):
            n_broken += 1
            continue
        frame = atoms.copy()
        frame.set_constraint()
        frame.set_momenta(None)
        sp = TBLite(method=job["method"], verbosity=0)  # cold start: reproducible labels
        frame.calc = sp
        e, f = frame.get_potential_energy(), frame.get_forces()
        frame.calc = SinglePointCalculator(frame, energy=round(float(e), 6),
                                           forces=np.round(f, 5))
        phi, psi = wrap(frame.get_dihedral(*phi_i)), wrap(frame.get_dihedral(*psi_i))
        frame.info.update(phi=round(phi, 4), psi=round(psi, 4), cell=job["cell"],
                          region="phi>0" if phi > 0 else "phi<0",
                          c7ax_al=bool(C7AX_AL[0] < phi < C7AX_AL[1]),
                          temperature_K=job["temperature"], method=job["method"])
        frame.positions = np.round(frame.positions, 6)
        frames.append(frame)
    path = Path(job["path"])
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, frames, format="extxyz") if frames else tmp.write_text("")
    tmp.replace(path)
    return {"cell": job["cell"], "frames": len(frames), "broken": n_broken,
            "s": time.perf_counter() - t0}


def main(argv=None) -> int:
    from ubmd.executors import JobFailure, LocalExecutor
    from ubmd.io import read_frames, write_frames_atomic

    a = _args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    dih = json.loads((DATA_DIR / "dihedrals.json").read_text())
    rng = np.random.default_rng(a.seed)
    width = 360.0 / a.cells
    jobs = []
    for i in range(a.cells):
        for j in range(a.cells):
            k = i * a.cells + j
            centre = (-180.0 + width * (i + rng.uniform()), -180.0 + width * (j + rng.uniform()))
            jobs.append({"cell": k, "centre": centre, "dihedrals": dih, "seed": a.seed * 7919 + k,
                         "start": str(DATA_DIR / "ala2_relaxed.xyz"), "method": a.method,
                         "temperature": a.temperature, "equil_fs": a.equil_fs,
                         "stride_fs": a.stride_fs, "frames": a.frames,
                         "relax_steps": a.relax_steps, "path": str(a.work / f"cell_{k:03d}.extxyz")})
    todo = [j for j in jobs if not Path(j["path"]).exists()]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} squares done; {len(todo)} to run", flush=True)
    t0 = time.perf_counter()
    with LocalExecutor(a.workers, threads=1) as ex:
        for n_done, (i, res) in enumerate(ex.map_unordered(cell_job, todo), 1):
            if isinstance(res, JobFailure):
                print(f"square {todo[i]['cell']}: {res.reason}", flush=True)
                continue
            print(f"[{n_done}/{len(todo)}] square {res['cell']}: {res['frames']} frames, "
                  f"{res['broken']} broken, {res['s']:.0f} s "
                  f"(elapsed {time.perf_counter() - t0:.0f} s)", flush=True)
    missing = [j["cell"] for j in jobs if not Path(j["path"]).exists()]
    if missing:
        print(f"squares {missing} failed: run again to retry them")
        return 1
    frames = [f for j in jobs for f in read_frames(j["path"])]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_frames_atomic(frames, a.out)
    phi = np.array([f.info["phi"] for f in frames])
    print(f"wrote {len(frames)} frames to {a.out}: phi>0 {np.mean(phi > 0):.2f}, "
          f"C7ax/alphaL {np.mean([f.info['c7ax_al'] for f in frames]):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
