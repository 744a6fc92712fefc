"""The GPU check of issue #25 (item 4): CUDA against CPU numbers, a ~32k-atom biased step and
training throughput, each stage time-boxed in its own process, so that one failing or hanging
stage (a CUDA error, a crash inside LAMMPS) leaves the others running.

Run by ``scripts/gpu_check.sh`` on a GPU machine (after it has built the plugin there); alone:

    python -m benchmarks.gpu_check [--out DIR] [--device cuda] [--stages a,b,...] [--budget S]
    python -m benchmarks.gpu_check --dry-run --out DIR     # CPU against CPU, tiny sizes, seconds

Stages (in this order; each gets ``min(its own limit, what is left of --budget)`` seconds):

* ``env``: torch, CUDA, the GPU, the package versions, whether the plugin is there;
* ``models``: model files of the reference-sized network (issue #25: cutoff 5 Å, 7 radial and
  9 basis functions, readout [512, 512], posterior uncertainty on sketched features K = 512 or
  on last-layer features; random weights, species scale 0.05, a random posterior head), in
  float64 and float32, species H C O Al; a rattled MIL-53(Al) cell (76 atoms) and the 32k-atom
  cell (12 x 6 x 6 conventional cells, 32 832 atoms) as LAMMPS data;
* ``agree_calc``: :class:`ubmd.calculator.UBMDCalculator` on ``--device`` against ``cpu`` on two
  rattled MIL-53 cells in a row, bias on (tau_F = tau_sigma = 0.25, window 1, weight of H 0):
  energy, per-atom energies, forces, unbiased and bias forces, stress, unbiased and bias stress,
  virial, u, u_i, bias energy, scales. float64 must agree to ``TOL64`` (relative to the largest
  entry), float32 to ``TOL32``;
* ``agree_lammps``: the same through ``pair_style ubmd ... device cuda`` against ``device cpu``
  (``run 0``; energy, forces, virial, u, bias energy, s_F, s_sigma, max u_i, u_i), plain and
  biased, and LAMMPS on the CPU against the calculator on the CPU;
* ``step_lammps``: MD steps of the 32k-atom cell in LAMMPS, float32: plain, biased with sketched
  and with last-layer features (tau_F 0.25, weight of H 0, window 2), ``--device`` first, then
  the CPU with all cores as torch threads; ms/step, µs/atom-step, biased/plain, peak GPU memory;
* ``train``: training throughput (structures/s per epoch, validation included; the median epoch
  after the first) with the AL campaigns' settings (``benchmarks.train_speed``: alanine
  dipeptide and MIL-53), ``training.device`` = ``--device`` against the CPU with one and with
  all threads; validation errors after the last epoch, side by side;
* ``step_calc``: the 32k-atom biased evaluation through the ASE calculator (neighbour list on the
  CPU), ``--device`` against the CPU.

Writes ``gpu_check.json`` (every stage's numbers, status, seconds) and ``gpu_check.log`` (every
stage's output) under ``--out`` (default ``$OUT``, else build/gpu_check) and prints a table.
Exit status 0 when every stage ran and agreed within its tolerances, 1 otherwise (a stage is
``ok``, ``mismatch`` (ran, but a number is off), ``failed``, ``timeout`` or ``skipped``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import ROOT, module_command, module_env

ELEMENTS = ["H", "C", "O", "Al"]
REFERENCE = {"cutoff": 5.0, "n_radial": 7, "n_basis": 9, "hidden": [512, 512], "n_sketch": 512}
TINY = {"cutoff": 5.0, "n_radial": 4, "n_basis": 6, "hidden": [32, 32], "n_sketch": 32}
TOL64, TOL32 = 1e-9, 1e-4  # CUDA against CPU, relative to the largest entry of each quantity
TOL_LAMMPS_CALC = 1e-8  # LAMMPS against the calculator, both on the CPU (tests use the same)
BIAS = {"tau_forces": 0.25, "tau_stress": 0.25, "window": 1, "weights": {"H": 0.0}}
#: stage -> (seconds at most, needs the files of stage models)
STAGES = {"env": (60, False), "models": (120, False), "agree_calc": (120, True),
          "agree_lammps": (150, True), "step_lammps": (240, True), "train": (150, False),
          "step_calc": (120, True)}


def rel_err(a, b) -> float:
    """max |a - b| / max |b| (0 when both are zero)."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def compare(got: dict, ref: dict, tol: float) -> dict:
    """{quantity: relative error}, with ``worst`` and ``ok`` (every error <= tol)."""
    errs = {k: rel_err(got[k], ref[k]) for k in ref if k in got}
    worst = max(errs.values()) if errs else float("inf")
    return {"errors": errs, "worst": worst, "tol": tol, "ok": bool(worst <= tol)}


def guarded(fn, *args, **kwargs):
    """(fn(...), None), or (None, the error) with its traceback printed: one failing case of a
    stage (a CUDA error, say) leaves the stage's other cases running."""
    import traceback

    try:
        return fn(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        sys.stdout.flush()
        return None, f"{type(exc).__name__}: {exc}"[:500]


def failed_case(error: str, tol: float) -> dict:
    return {"error": error, "worst": float("inf"), "tol": tol, "ok": False}


def cell(rattle_seed: int | None = 1, repl=(1, 1, 1)):
    """The MIL-53(Al) conventional cell (orthorhombic), replicated, optionally rattled."""
    from .md_speed import unit_cell

    atoms = unit_cell("mil53").repeat(repl)
    if rattle_seed is not None:
        atoms.rattle(stdev=0.05, seed=rattle_seed)
        atoms.wrap()
    return atoms


def work_paths(work: Path) -> dict:
    return {f"{kind}_{dt}": work / f"mil53_{kind}_{dt}.pt" for kind in ("sketch", "last_layer")
            for dt in ("float64", "float32")}


# ----------------------------------------------------------------------------- stages

def stage_env(spec: dict) -> dict:
    import importlib.metadata as md
    import platform

    import torch
    from ubmd.plugin import plugin_path

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "device": spec["device"], "allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    for name in ("numpy", "ase", "vesin", "lammps", "mpi4py", "mpich"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    if spec["device"].startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2 ** 30, 1),
                   gpu_capability=f"{p.major}.{p.minor}", gpu_count=torch.cuda.device_count())
    try:
        out["plugin"] = str(plugin_path())
    except FileNotFoundError as exc:
        out["plugin"] = None
        out["plugin_missing"] = str(exc)
    try:
        out["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=False,
                                    capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git"] = None
    out["ok"] = bool(out["cuda_available"]) or not spec["device"].startswith("cuda")
    return out


def stage_models(spec: dict) -> dict:
    import torch
    from ase.data import atomic_numbers
    from ase.io import write
    from ubmd.model import MLIP
    from ubmd.model_file.export import ExportedModel, export_model
    from ubmd.uncertainty.features import FeatureModel
    from ubmd.uncertainty.heads import UncertaintyHead

    from .md_speed import REPL, write_data

    work = Path(spec["work"])
    work.mkdir(parents=True, exist_ok=True)
    net = TINY if spec["dry_run"] else REFERENCE
    zs = [atomic_numbers[e] for e in ELEMENTS]
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    paths = work_paths(work)
    for kind in ("sketch", "last_layer"):
        for dt in ("float64", "float32"):  # a fresh module per file: export converts in place
            m = MLIP(zs, net["cutoff"], net["n_radial"], net["n_basis"], net["hidden"], seed=0)
            m = m.double().eval()
            with torch.no_grad():
                m.species_scale.fill_(0.05)  # random weights: forces of ~1 eV/Å, sane MD
            fm = FeatureModel([m], kind=kind, n_sketch=net["n_sketch"], seed=0)
            g = torch.Generator().manual_seed(1)
            t = torch.randn(fm.dim, fm.dim, generator=g, dtype=torch.float64) / fm.dim ** 0.5
            head = UncertaintyHead("posterior", fm.dim, transform=t, atomic_transform=t.clone())
            export_model(ExportedModel(fm, head), paths[f"{kind}_{dt}"], getattr(torch, dt))
    frames = [cell(seed) for seed in (1, 2)]
    write(str(work / "agree.traj"), frames)  # exact positions
    write_data(work / "agree.data", frames[0], ELEMENTS)
    big = cell(None, REPL["mil53"][100 if spec["dry_run"] else 32000])
    write_data(work / "big.data", big, ELEMENTS)
    write(str(work / "big.traj"), big)
    return {"ok": True, "network": net, "models": {k: str(p) for k, p in paths.items()},
            "agree_atoms": len(frames[0]), "big_atoms": len(big)}


CALC_KEYS = ("energy", "energies", "forces", "stress", "unbiased_forces", "bias_forces",
             "unbiased_stress", "bias_stress", "virial", "uncertainty", "atomic_uncertainty",
             "bias_energy", "bias_scale_forces", "bias_scale_stress")


def calc_results(model: str, frames, device: str) -> list[dict]:
    """The calculator's results on ``frames`` in a row (one trajectory: the windows carry on)."""
    import numpy as np
    from ase.calculators.calculator import all_changes
    from ubmd.calculator import UBMDCalculator

    calc = UBMDCalculator(model, device=device, **BIAS)
    out = []
    for atoms in frames:
        atoms = atoms.copy()
        calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)
        out.append({k: np.asarray(calc.results[k], dtype=float).tolist() for k in CALC_KEYS
                    if k in calc.results})
    return out


def run_stage(name: str, spec_path: str, limit: str) -> int:
    spec = dict(json.loads(Path(spec_path).read_text()), limit=float(limit))
    if name in ("env", "models"):
        fn = globals()[f"stage_{name}"]
    else:
        from . import gpu_check_lammps, gpu_check_stages

        fn = getattr(gpu_check_lammps if "lammps" in name else gpu_check_stages, f"stage_{name}")
    res = fn(spec)
    Path(spec["work"], f"{name}.json").write_text(json.dumps(res, indent=1, default=str))
    return 0


# ----------------------------------------------------------------------------- driver

def run_isolated(name: str, spec_path: Path, work: Path, log_path: Path, limit: float) -> dict:
    """Stage ``name`` in its own process group (output appended to ``log_path``), killed with
    everything it started after ``limit`` seconds; its result, with ``status``."""
    res_path = work / f"{name}.json"
    res_path.unlink(missing_ok=True)
    with log_path.open("a") as log:
        log.write(f"===== {name} ({time.strftime('%H:%M:%S')}, limit {limit:.0f} s)\n")
        log.flush()
        proc = subprocess.Popen(module_command("gpu_check", "_stage", name, spec_path, int(limit)), cwd=ROOT,
                                env=dict(module_env(), PYTHONUNBUFFERED="1"), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        try:  # the stage and whatever it started (a LAMMPS worker holding the GPU)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    if rc == 0 and res_path.exists():
        r = json.loads(res_path.read_text())
        r["status"] = "ok" if r.get("ok", True) else "mismatch"
        return r
    tail = log_path.read_text(errors="replace").splitlines()[-6:]
    return {"status": "timeout" if rc == "timeout" else "failed", "error": f"rc={rc}: " + " | ".join(tail)}


def summary_line(name: str, r: dict) -> str:
    st = r.get("status", "?")
    head = f"{name:13s} {st:8s} {r.get('seconds', 0):6.1f} s  "
    if st not in ("ok", "mismatch"):
        return head + r.get("error", "")[-160:].replace("\n", " | ")
    if name == "env":
        return head + f"torch {r['torch']} cuda {r['torch_cuda']} {r.get('gpu', 'no GPU')}; plugin {r['plugin']}"
    if name == "models":
        return head + f"{r['agree_atoms']} / {r['big_atoms']} atoms, hidden {r['network']['hidden']}"
    if name in ("agree_calc", "agree_lammps"):
        return head + "; ".join(f"{k} {v['worst']:.1e} (tol {v['tol']:.0e}){'' if v['ok'] else ' FAIL'}"
                                for k, v in r["cases"].items())
    if name == "step_lammps":
        return head + "; ".join(f"{x['device']}: " + ", ".join(f"{m} {v['ms_per_step']:.1f} ms" for m, v in
                                                             x["modes"].items()) for x in r["devices"].values())
    if name == "train":
        return head + "; ".join(f"{c} " + ", ".join(f"{x['device']}x{x['threads']} "
                                                   + (f"{x['structures_per_s']:.0f}/s" if "error" not in x else "FAILED")
                                                   for x in v["runs"]) for c, v in r["cases"].items())
    if name == "step_calc":
        return head + "; ".join(f"{v['device']} {v['s_per_eval'] * 1000:.0f} ms" for v in r.values()
                                if isinstance(v, dict) and "s_per_eval" in v)
    return head


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "build" / "gpu_check"))
    p.add_argument("--work", default=None, help="model and data files (default: a new folder in $TMPDIR or /tmp)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--budget", type=float, default=330.0, help="seconds for all stages")
    p.add_argument("--dry-run", action="store_true",
                   help="CPU against CPU (--device cpu), tiny network and cells, short runs")
    ns, rest = p.parse_known_args(argv)
    if rest[:1] == ["_stage"]:
        return run_stage(*rest[1:4])
    if rest:
        p.error(f"unknown arguments {rest}")
    if ns.dry_run:
        ns.device = "cpu"
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(ns.work) if ns.work else Path(os.environ.get("TMPDIR", "/tmp")) / f"ubmd_gpu_check_{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    spec = {"device": ns.device, "dry_run": ns.dry_run, "work": str(work)}
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    deadline = time.monotonic() + ns.budget
    results: dict = {"spec": spec, "stages": {}}
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    for name in [s for s in STAGES if s in ns.stages.split(",")]:
        limit, needs_models = STAGES[name]
        left = deadline - time.monotonic()
        why = "no time left in --budget" if left < 5 else None
        if needs_models and "models" in ns.stages.split(",") and \
                results["stages"].get("models", {}).get("status") != "ok":
            why = "needs stage models"
        t0 = time.monotonic()
        if why:
            r = {"status": "skipped", "error": why}
        else:
            r = run_isolated(name, spec_path, work, out / "gpu_check.log", min(limit, left))
        r["seconds"] = round(time.monotonic() - t0, 1)
        results["stages"][name] = r
        print(summary_line(name, r), flush=True)
        (out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    bad = [f"{n} ({r['status']})" for n, r in results["stages"].items() if r["status"] != "ok"]
    print(f"gpu_check: {len(results['stages']) - len(bad)} of {len(results['stages'])} stages ok; "
          f"{'not ok: ' + ', '.join(bad) if bad else 'no problem'}; {out / 'gpu_check.json'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
