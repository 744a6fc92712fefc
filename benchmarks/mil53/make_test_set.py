"""GFN1-xTB-labelled MIL-53(Al) test set spanning the narrow-pore (np) and large-pore (lp) states.

Input: the relaxed 2x1x1 start structures (152 atoms, same atom order and cell topology) from
``benchmarks.mil53.relax_start_structures``: examples/mil53/data/mil53_{lp,np}_gfn1_2x1x1.extxyz.

Frames (default 80, all 152 atoms):

* ``perturb_lp`` / ``perturb_np`` (32 each): the relaxed cell strained by a random symmetric strain
  (each of the 6 components uniform in [-strain, strain], default 0.03) and every atom displaced by
  a Gaussian vector scaled so that the frame's RMS displacement is uniform in [0.05, 0.10] A;
* ``interp`` (16): cell and fractional coordinates linearly interpolated from np (lambda = 0) to lp
  (lambda = 1), lambda uniform on [0, 1], atoms then displaced by 0.03 A RMS.

Labels: :func:`ubmd.labelling.label_structures` with GFN1-xTB (tblite, Gamma point), one worker,
OMP 1 thread; each label is appended to a checkpoint file as it arrives (a restart skips the frames
already labelled). Frames with any force component above 20 eV/A are left out of the output, as
the AL loop drops such labels (9 of the 80 with the defaults: a 0.1 A RMS Gaussian displacement
sometimes stretches an O-H or C-H bond far). Output ``examples/mil53/data/mil53_test_gfn1.extxyz``: energy (eV), forces (eV/A),
stress (eV/A^3, ASE sign) and info ``volume_per_fu`` (A^3 per Al4(OH)4(BDC)4, 76 atoms), ``kind``,
``lam``, ``strain_max``, ``disp_rms``, ``label_time_s``.

Usage:  nice -n 5 python -m benchmarks.mil53.make_test_set [--n-perturb 32 --n-interp 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.io import read, write  # noqa: E402

from ubmd.analysis import volume_per_fu  # noqa: E402
from ubmd.labelling import label_structures  # noqa: E402

ATOMS_PER_FU = 76  # Al4(OH)4(BDC)4


def vpfu(atoms) -> float:
    return volume_per_fu(atoms.cell, len(atoms), atoms_per_fu=ATOMS_PER_FU)


def clean(atoms):
    out = atoms.copy()
    out.calc = None
    for key in list(out.info):
        del out.info[key]
    for key in list(out.arrays):
        if key not in ("numbers", "positions"):
            del out.arrays[key]
    return out


def displace(atoms, rms: float, rng) -> None:
    d = rng.standard_normal((len(atoms), 3))
    d *= rms / np.sqrt(np.mean(np.sum(d ** 2, axis=1)))
    atoms.positions += d


def perturbed(ref, n: int, kind: str, rng, strain: float, disp=(0.05, 0.10)) -> list:
    frames = []
    for _ in range(n):
        a = clean(ref)
        e = rng.uniform(-strain, strain, 6)
        eps = np.array([[e[0], e[5], e[4]], [e[5], e[1], e[3]], [e[4], e[3], e[2]]])
        a.set_cell(np.array(a.cell) @ (np.eye(3) + eps), scale_atoms=True)
        rms = rng.uniform(*disp)
        displace(a, rms, rng)
        a.info.update({"kind": kind, "lam": -1.0, "strain_max": float(np.abs(e).max()),
                       "disp_rms": float(rms)})
        frames.append(a)
    return frames


def interpolated(np_ref, lp_ref, n: int, rng, disp: float = 0.03) -> list:
    if not np.array_equal(np_ref.numbers, lp_ref.numbers):
        raise ValueError("np and lp structures must have the same atom order")
    f0, f1 = np_ref.get_scaled_positions(wrap=False), lp_ref.get_scaled_positions(wrap=False)
    df = f1 - f0
    df -= np.round(df)  # shortest path in fractional coordinates
    c0, c1 = np.array(np_ref.cell), np.array(lp_ref.cell)
    frames = []
    for lam in np.sort(rng.uniform(0.0, 1.0, n)):
        a = clean(np_ref)
        a.set_cell(c0 + lam * (c1 - c0), scale_atoms=False)
        a.set_scaled_positions(f0 + lam * df)
        displace(a, disp, rng)
        a.info.update({"kind": "interp", "lam": float(lam), "strain_max": 0.0, "disp_rms": disp})
        frames.append(a)
    return frames


def build_frames(data: Path, n_perturb: int, n_interp: int, strain: float, seed: int) -> list:
    rng = np.random.default_rng(seed)
    lp = read(data / "mil53_lp_gfn1_2x1x1.extxyz")
    npr = read(data / "mil53_np_gfn1_2x1x1.extxyz")
    frames = (perturbed(lp, n_perturb, "perturb_lp", rng, strain)
              + perturbed(npr, n_perturb, "perturb_np", rng, strain)
              + interpolated(npr, lp, n_interp, rng))
    for i, a in enumerate(frames):
        a.info["frame"] = i
        a.info["volume_per_fu"] = vpfu(a)
    return frames


def label_with_checkpoint(frames, ckpt: Path, n_workers: int, timeout: float, describe):
    """GFN1-xTB labels of ``frames`` (each with a unique ``info["frame"]``), each appended to
    ``ckpt`` as it arrives; frames already in ``ckpt`` are skipped (a restart goes on).
    ``describe(atoms)`` is the progress line's middle part. Returns ``(done, failures, result)``:
    ``{frame: labelled Atoms}``, the failed frames with their reasons, and
    :func:`ubmd.labelling.label_structures`'s result of this call."""
    done = {}
    if ckpt.exists() and ckpt.stat().st_size:
        for a in read(ckpt, ":"):
            done[int(a.info["frame"])] = a
    todo = [a for a in frames if int(a.info["frame"]) not in done]
    print(f"{len(frames)} frames, {len(done)} already labelled, {len(todo)} to label", flush=True)
    failures = []

    def on_done(outcome):
        if outcome.atoms is None:
            failures.append({"frame": int(todo[outcome.index].info["frame"]),
                             "reason": outcome.reason})
            print(f"  frame {todo[outcome.index].info['frame']} FAILED: {outcome.reason}", flush=True)
            return
        a = outcome.atoms
        write(ckpt, a, format="extxyz", append=True)
        done[int(a.info["frame"])] = a
        print(f"  frame {a.info['frame']:3d} {describe(a)} E {a.get_potential_energy():.3f} eV  "
              f"{outcome.elapsed:.1f} s", flush=True)

    res = label_structures(todo, {"name": "gfn1-xtb"}, n_workers=n_workers, timeout=timeout,
                           callback=on_done)
    return done, failures, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="examples/mil53/data")
    ap.add_argument("--work", default="runs/mil53")
    ap.add_argument("--out", default="examples/mil53/data/mil53_test_gfn1.extxyz")
    ap.add_argument("--n-perturb", type=int, default=32)
    ap.add_argument("--n-interp", type=int, default=16)
    ap.add_argument("--strain", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-force", type=float, default=20.0,
                    help="drop frames with any |F| component above this (eV/A), as the AL loop does")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    frames = build_frames(Path(args.data), args.n_perturb, args.n_interp, args.strain, args.seed)
    ckpt = work / "test_set_labelled.extxyz"
    t0 = time.perf_counter()
    done, failures, res = label_with_checkpoint(
        frames, ckpt, args.workers, args.timeout,
        lambda a: f"{a.info['kind']:10s} V/fu {a.info['volume_per_fu']:7.1f}")
    wall = time.perf_counter() - t0
    labelled = [done[k] for k in sorted(done)]
    for a in labelled:
        a.info.pop("pool_index", None)
    # the AL loop drops labels with any |F| component above 20 eV/A; so does the test set
    kept = [a for a in labelled if np.abs(a.get_forces()).max() <= args.max_force]
    dropped = [{"frame": int(a.info["frame"]), "kind": a.info["kind"],
                "max_force": float(np.abs(a.get_forces()).max())}
               for a in labelled if np.abs(a.get_forces()).max() > args.max_force]
    write(args.out, kept, format="extxyz")
    times = list(res.timings.values())
    kinds = sorted({a.info["kind"] for a in kept})
    summary = {"n_frames": len(frames), "n_labelled": len(labelled), "n_written": len(kept),
               "n_by_kind": {k: sum(a.info["kind"] == k for a in kept) for k in kinds},
               "dropped_max_force": dropped, "failures": failures,
               "wall_s_this_run": wall,
               "s_per_label_mean": float(np.mean(times)) if times else None,
               "volume_per_fu_range": [float(min(a.info["volume_per_fu"] for a in labelled)),
                                       float(max(a.info["volume_per_fu"] for a in labelled))],
               "label_time_s_by_kind": {k: float(np.mean([a.info["label_time_s"] for a in kept
                                                          if a.info["kind"] == k])) for k in kinds}}
    (work / "test_set_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
