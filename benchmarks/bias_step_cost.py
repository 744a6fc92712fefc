"""The biased MD step against the plain one with the reference-sized network (issue #25), before
and after the one-pass bias and the faster descriptor, in LAMMPS; the scaling of the per-atom
cost; two MPI ranks; training throughput.

Network as close to the paper's reference code as the config allows: cutoff 5 Å, 7 radial and
9 basis functions, readout [512, 512], posterior uncertainty on sketched gradient features
(K = 512) or on last-layer features, tau_F 0.25 (tau_sigma 0.25 under NPT), bias weight of H 0,
float32, one thread. Untrained models (random weights, species scale 0.05, a random posterior
head): the cost does not depend on training.

Cases: alanine dipeptide (22 atoms, vacuum, NVT), MIL-53(Al) 4x2x2 conventional cells (1216
atoms) NVT and NPT (bias forces + bias stress). Modes (one LAMMPS process per case and variant,
modes interleaved, every mode from the same coordinates, ``--repeats`` processes per variant,
variants alternating): ``plain`` (uncertainty none), ``sketch`` (bias, per-atom uncertainties on
every step, as the AL walkers run), ``sketch_every10`` (bias on every step, per-atom
uncertainties every 10 steps), ``last_layer`` (bias with last-layer features).

Variants: ``before`` = the code of ``--baseline`` (default b8f87e2, the commit before issue #25:
plugin built from a ``git archive`` of it under build/bench/, models exported by its Python
code), ``after`` = the checked-out code; ``after_two_pass`` = the checked-out code with
UBMD_ONE_PASS=0 (new descriptor, older autograd bias path: what the one-pass path adds).

Timing: process CPU time of ``run N pre no post no`` (the machine is shared: wall time is
reported too), medians over repeats; peak memory (VmHWM) per mode.

    python -m benchmarks.bias_step_cost [all|md|scaling|mpi|train] [--quick] [--repeats N]
        -> benchmarks/results/bias_step_cost_issue25[_quick].json (+ a table on stdout)
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

from . import RESULTS, ROOT, module_command, module_env
from . import blas_binding as B
from . import md_speed as M

WORK = ROOT / "build" / "bench" / "issue25"
BASELINE_REV = "b8f87e2"
REFERENCE = {"cutoff": 5.0, "n_radial": 7, "n_basis": 9, "hidden": [512, 512], "n_sketch": 512}
ELEMENTS = {"ala2": ["H", "C", "N", "O"], "mil53": ["H", "C", "O", "Al"]}
TAU = "tau_forces 0.25 window 2 weights H 0.0"
NVT = "fix int all nvt temp 300 300 0.05"
NPT = "fix int all npt temp 300 300 0.05 aniso 0.0 0.0 0.5"
# case: (system, replication, boundary, integrator, stress bias, (steps, steps quick))
CASES = {
    "ala2": ("ala2", (1, 1, 1), "s s s", NVT, False, (200, 40)),
    "mil53_nvt": ("mil53", (4, 2, 2), "p p p", NVT, False, (10, 3)),
    "mil53_npt": ("mil53", (4, 2, 2), "p p p", NPT, True, (10, 3)),
}
MODES = ("plain", "sketch", "sketch_every10", "last_layer")
MIL53_CELLS = {1216: (4, 2, 2), 16416: (9, 4, 6), 131328: (12, 12, 12)}


def mode_styles(stress: bool) -> dict:
    tau = TAU + (" tau_stress 0.25" if stress else "")
    return {"plain": "uncertainty none", "sketch": tau, "sketch_every10": tau + " every 10",
            "last_layer": tau}


# ----------------------------------------------------------------------------- code variants

def baseline(rev: str) -> dict:
    """The code of ``rev`` (a ``git archive`` under build/bench/) with its plugin built:
    {"plugin": ubmdplugin.so, "python": its python/ directory}."""
    src = WORK / f"baseline-{rev}"
    plugin = src / "python" / "ubmd" / "lib" / "ubmdplugin.so"
    if not plugin.exists():
        src.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(src)], input=tar.stdout, check=True)
        print(f"building the plugin of {rev} in {src} (a few minutes)", flush=True)
        subprocess.run(["bash", "scripts/build_plugin.sh", "-DUBMD_BUILD_TESTS=OFF"], cwd=src,
                       env=dict(os.environ, BUILD_DIR=str(src / "build")), check=True,
                       stdout=subprocess.DEVNULL)
    return {"plugin": str(plugin), "python": str(src / "python")}


def current() -> dict:
    return {"plugin": str(M.plugin_copy()), "python": str(ROOT / "python")}


def python_env(python_dir: str) -> dict:
    """Environment for a subprocess that imports ubmd from ``python_dir``."""
    return {"PYTHONPATH": os.pathsep.join([str(ROOT), python_dir])}


EXPORT = """
import sys, torch
from ase.data import atomic_numbers
from ubmd.model import MLIP
from ubmd.uncertainty.features import FeatureModel
from ubmd.uncertainty.heads import UncertaintyHead
from ubmd.model_file.export import ExportedModel, export_model
ref, out, elements, kind = eval(sys.argv[1]), sys.argv[2], sys.argv[3].split(), sys.argv[4]
zs = [atomic_numbers[e] for e in elements]
m = MLIP(zs, ref["cutoff"], ref["n_radial"], ref["n_basis"], ref["hidden"], seed=0).double().eval()
with torch.no_grad():
    m.species_scale.fill_(0.05)  # random weights: small forces, sane MD
fm = FeatureModel([m], kind=kind, n_sketch=ref["n_sketch"], seed=0)
g = torch.Generator().manual_seed(1)
t = torch.randn(fm.dim, fm.dim, generator=g, dtype=torch.float64) / fm.dim ** 0.5
head = UncertaintyHead("posterior", fm.dim, transform=t, atomic_transform=t.clone())
export_model(ExportedModel(fm, head), out, torch.float32)
"""


def models(variant: dict, label: str, system: str) -> dict:
    """{kind: model file} of the reference-sized network, exported by the variant's code."""
    out = {}
    for kind in ("sketch", "last_layer"):
        path = WORK / "models" / f"{label.split('_')[0]}_{system}_{kind}.pt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-c", EXPORT, repr(REFERENCE), str(path),
                            " ".join(ELEMENTS[system]), kind],
                           env=dict(os.environ, **python_env(variant["python"])), check=True)
        out[kind] = str(path)
    return out


def data_file(system: str, repl: tuple) -> Path:
    from ase.io import read

    path = WORK / "data" / f"{system}_{'x'.join(map(str, repl))}.data"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        if system == "ala2":
            atoms = read(B.ALA2, 0)
            atoms.center(vacuum=6.0)
        else:
            atoms = M.unit_cell("mil53").repeat(repl)
        M.write_data(path, atoms, ELEMENTS[system])
    return path


def variants(ns) -> dict:
    for old in (WORK / "models").glob("after*.pt"):  # exported by the code now checked out
        old.unlink()
    out = {"after": dict(current(), env={})}
    if ns.two_pass:
        out["after_two_pass"] = dict(current(), env={"UBMD_ONE_PASS": "0"})
    if not ns.no_baseline:
        out = {"before": dict(baseline(ns.baseline), env={}), **out}
    return out


# ----------------------------------------------------------------------------- parts

def run_case(case: str, variant: dict, label: str, modes, repl, steps: int, warmup: int = 3,
             repeats: int = 1, nprocs: int = 1) -> dict:
    system, _, boundary, integrator, stress, _ = CASES[case]
    kinds = models(variant, label, system)
    spec = {"plugin": variant["plugin"], "data": str(data_file(system, repl)),
            "elements": ELEMENTS[system], "modes": list(modes), "boundary": boundary,
            "mode_styles": mode_styles(stress), "integrator": integrator,
            "models": {m: kinds["last_layer" if m == "last_layer" else "sketch"] for m in modes},
            "model": kinds["sketch"], "repeats": repeats, "warmup": warmup, "steps": steps,
            "reset_box": stress, "skin": 1.0}
    env = dict(python_env(variant["python"]), **variant["env"])
    return M.run_worker(spec, nprocs=nprocs, env_extra=env)


def per_step(res: dict, steps: int) -> dict:
    """Per mode: medians of CPU and wall ms/step, µs/atom-step, peak RSS."""
    n = res["natoms"]
    out = {}
    for mode in res["times_s"]:
        cpu = statistics.median(res["cpu_s"][mode]) / steps
        wall = statistics.median(res["times_s"][mode]) / steps
        out[mode] = {"cpu_ms": 1e3 * cpu, "wall_ms": 1e3 * wall, "cpu_us_atom": 1e6 * cpu / n,
                     "wall_us_atom": 1e6 * wall / n, "rss_mib": res["max_rss_mib"][mode],
                     "cpu_s": res["cpu_s"][mode], "wall_s": res["times_s"][mode]}
    return out


def part_md(ns, var: dict) -> list:
    """Every case x variant, processes alternating between variants, ``repeats`` rounds."""
    cases = ns.cases or list(CASES)
    raw = {(c, v): {"times_s": {}, "cpu_s": {}, "max_rss_mib": {}} for c in cases for v in var}
    for rep in range(ns.repeats):
        for case in cases:
            steps = CASES[case][5][1 if ns.quick else 0]
            for label, variant in var.items():
                t0 = time.time()
                r = run_case(case, variant, label, MODES, CASES[case][1], steps)
                acc = raw[(case, label)]
                acc["natoms"] = r["natoms"]
                for key in ("times_s", "cpu_s"):
                    for mode, ts in r[key].items():
                        acc[key].setdefault(mode, []).extend(ts)
                for mode, mib in r["max_rss_mib"].items():
                    acc["max_rss_mib"][mode] = max(acc["max_rss_mib"].get(mode, 0.0), mib)
                print(f"  round {rep + 1}/{ns.repeats} {case:9s} {label:14s} "
                      f"{time.time() - t0:5.0f} s  load {M.load_average()}", flush=True)
    rows = []
    for (case, label), acc in raw.items():
        steps = CASES[case][5][1 if ns.quick else 0]
        ps = per_step(acc, steps)
        for mode, r in ps.items():
            plain = ps["plain"]
            rows.append({"case": case, "variant": label, "mode": mode, "natoms": acc["natoms"],
                         "steps": steps, **r,
                         "cpu_ratio_to_plain": r["cpu_ms"] / plain["cpu_ms"],
                         "wall_ratio_to_plain": r["wall_ms"] / plain["wall_ms"],
                         "rss_kib_per_atom": 1024 * r["rss_mib"] / acc["natoms"]})
    by = {(r["case"], r["variant"], r["mode"]): r for r in rows}
    for r in rows:
        b = by.get((r["case"], "before", r["mode"]))
        r["cpu_speedup_vs_before"] = b["cpu_ms"] / r["cpu_ms"] if b else None
    return rows


def part_scaling(ns, var: dict) -> list:
    """Per-atom cost of the checked-out code from 1216 to ~131k MIL-53 atoms (NVT, plain and
    sketch bias with per-atom uncertainties every 10 steps)."""
    sizes = ns.sizes or ([1216, 16416] if ns.quick else list(MIL53_CELLS))
    rows = []
    for n in sizes:
        steps = max(2, min(10, int(3e4 / n)))
        r = run_case("mil53_nvt", var["after"], "after", ["plain", "sketch_every10"],
                     MIL53_CELLS[n], steps, warmup=3 if n < 100000 else 2)
        for mode, x in per_step(r, steps).items():
            rows.append({"natoms": r["natoms"], "mode": mode, "steps": steps, **x})
        print(f"  scaling {r['natoms']} atoms done, load {M.load_average()}", flush=True)
    return rows


def part_mpi(ns, var: dict) -> list:
    """1 vs 2 MPI ranks at 16416 MIL-53 atoms (plain and biased), CPU time max over ranks."""
    rows = []
    steps = 3 if ns.quick else 5
    for ranks in (1, 2):
        r = run_case("mil53_nvt", var["after"], "after", ["plain", "sketch_every10"],
                     MIL53_CELLS[16416], steps, nprocs=ranks)
        for mode, x in per_step(r, steps).items():
            rows.append({"ranks": ranks, "natoms": r["natoms"], "mode": mode, **x})
    one = {r["mode"]: r for r in rows if r["ranks"] == 1}
    for r in rows:
        r["wall_speedup"] = one[r["mode"]]["wall_ms"] / r["wall_ms"]
    return rows


def part_train(ns, var: dict) -> list:
    """Training throughput of each variant on the campaign settings (``train_speed
    --campaign``), variants alternating, ``repeats`` rounds; the validation errors per epoch."""
    rows = []
    for rep in range(ns.repeats):
        for case in ("ala2", "mil53"):
            for label in ("before", "after"):
                if label not in var:
                    continue
                out = WORK / f"train_{label}_{case}_{rep}.json"
                cmd = module_command("train_speed", "--campaign", case, "--epochs",
                                     "2" if ns.quick else "6", "--json", out)
                env = dict(module_env(), OMP_NUM_THREADS="1", **python_env(var[label]["python"]))
                subprocess.run(cmd, env=env, check=True)
                rows.append({"variant": label, "round": rep, **json.loads(out.read_text())})
    for case in ("ala2", "mil53"):
        med = {}
        for label in ("before", "after"):
            xs = [r["structures_per_s_epoch_cpu"] for r in rows
                  if r["case"] == case and r["variant"] == label]
            med[label] = statistics.median(xs) if xs else None
        for r in rows:
            if r["case"] == case and med.get("before"):
                r["speedup_vs_before_median"] = (med["after"] or 0) / med["before"]
    return rows


# ----------------------------------------------------------------------------- report

def table(res: dict) -> str:
    f = B.fmt
    lines = []
    if res.get("md"):
        lines.append(f"{'case':9s} {'variant':14s} {'mode':15s} | {'ms/step':>8s} {'us/atom':>8s} "
                     f"{'/plain':>6s} {'speedup':>7s} | {'wall ms':>8s} {'KiB/atom':>8s}")
        for r in res["md"]:
            lines.append(f"{r['case']:9s} {r['variant']:14s} {r['mode']:15s} | {f(r['cpu_ms']):>8s} "
                         f"{f(r['cpu_us_atom'], 1):>8s} {f(r['cpu_ratio_to_plain']):>6s} "
                         f"{f(r['cpu_speedup_vs_before']):>7s} | {f(r['wall_ms']):>8s} "
                         f"{f(r['rss_kib_per_atom'], 1):>8s}")
    for r in res.get("scaling", []):
        lines.append(f"scaling {r['natoms']:7d} atoms {r['mode']:15s} {f(r['cpu_us_atom'], 1)} "
                     f"us/atom-step (CPU), {f(r['wall_us_atom'], 1)} (wall), {r['rss_mib']:.0f} MiB")
    for r in res.get("mpi", []):
        lines.append(f"mpi {r['ranks']} rank(s) {r['natoms']} atoms {r['mode']:15s} "
                     f"{f(r['wall_ms'])} ms/step (wall), speedup {f(r['wall_speedup'])}")
    for r in res.get("train", []):
        last = {k: round(v, 4) for k, v in r["history"][-1].items() if k.endswith("_mae")}
        lines.append(f"train {r['variant']:7s} {r['case']:6s} round {r['round']} "
                     f"{f(r['structures_per_s_epoch_cpu'], 1)} structures/s per epoch (CPU), "
                     f"{f(r['structures_per_s_epoch'], 1)} (wall); speedup (median) "
                     f"{f(r.get('speedup_vs_before_median'))}; last validation {last}")
    return "\n".join(lines)


def main(args=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", nargs="?", default="all", choices=["all", "md", "scaling", "mpi", "train"])
    ap.add_argument("--quick", action="store_true", help="fewer steps, one round")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=None)
    ap.add_argument("--sizes", nargs="+", type=int, choices=list(MIL53_CELLS), default=None)
    ap.add_argument("--baseline", default=BASELINE_REV, help="git revision of the 'before' code")
    ap.add_argument("--no-baseline", action="store_true", help="only the checked-out code")
    ap.add_argument("--two-pass", action="store_true",
                    help="also the checked-out code with UBMD_ONE_PASS=0")
    ap.add_argument("--tag", default="", help="suffix of the JSON file name")
    ns = ap.parse_args(args)
    ns.repeats = ns.repeats or (1 if ns.quick else 3)
    t0 = time.time()
    var = variants(ns)
    res = {"benchmark": "bias_step_cost_issue25", **M.machine_info(), "reference": REFERENCE,
           "baseline": None if ns.no_baseline else ns.baseline, "quick": ns.quick,
           "repeats": ns.repeats, "load_start": M.load_average()}
    parts = ["md", "scaling", "mpi", "train"] if ns.part == "all" else [ns.part]
    for part in parts:
        print(f"{part} ...", flush=True)
        res[part] = {"md": part_md, "scaling": part_scaling, "mpi": part_mpi,
                     "train": part_train}[part](ns, var)
    res["load_end"], res["wall_s"] = M.load_average(), time.time() - t0
    out = RESULTS / f"bias_step_cost_issue25{'_quick' if ns.quick else ''}{ns.tag}.json"
    if out.exists() and ns.part != "all":  # a part run keeps the other parts of the file
        old = json.loads(out.read_text())
        old.update({k: v for k, v in res.items()})
        res = old
    out.write_text(json.dumps(res, indent=1))
    print("\n" + table(res))
    print(f"\nwrote {out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
