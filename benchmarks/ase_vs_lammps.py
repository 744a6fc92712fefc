"""Biased MD: LAMMPS ``pair_style ubmd`` vs the reference code's way of running (one Python
process, ASE Langevin MD, the model as an ASE calculator, neighbour list rebuilt every step).

Same model file (fcc Cu/Al, EMT-trained, see benchmarks.md_speed), same system, same number of steps,
same bias (bias_forces 0.2, window 2), Langevin 300 K, dt = 0.5 fs, one core each (torch 1 thread
in the ASE process, one MPI rank / OMP_NUM_THREADS=1 in LAMMPS). Each side runs in its own
process; the first force evaluation (setup) is excluded from the timing on both sides; peak RSS
(VmHWM) of each process is reported. The ASE side also reports the share of its step spent in
the neighbour list (vesin; timed through ``UBMDCalculator.neighbours``) and in the calculator.

    python -m benchmarks.ase_vs_lammps [--quick] [--dtype float64] [--rounds 2]

Writes benchmarks/results/ase_vs_lammps[_quick].json. ``--device cuda`` runs both sides on the
GPU (results in *_cuda.json), skipped without a GPU.
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

from . import md_speed as M
from . import module_command, module_env

TAU_F = 0.2
WINDOW = 2
SIZES = {108: 200, 1000: 40, 10000: 6}  # atoms -> steps (full)
SIZES_QUICK = {108: 50, 1000: 10, 10000: 3}


def ase_neighbour_list(pos, cell, pbc, cutoff):
    """ASE's own (numpy) neighbour list, as a pure-ASE reference code would use, in the
    layout of ``ubmd.neighbours.neighbour_list`` (sorted by i, then j)."""
    import numpy as np
    from ase.neighborlist import primitive_neighbor_list

    i, j, s = primitive_neighbor_list("ijS", np.broadcast_to(pbc, (3,)), cell, pos, cutoff)
    order = np.lexsort((j, i))
    return i[order].astype(np.int64), j[order].astype(np.int64), s[order].astype(np.int64)


def timed_calculator(ase_list: bool):
    """A ``UBMDCalculator`` subclass that sums the wall time of its neighbour lists
    (``nl_s``) and of its whole evaluations (``calc_s``); ``ase_list``: ASE's neighbour list
    instead of ubmd's (vesin)."""
    from ubmd.calculator import UBMDCalculator

    class TimedCalculator(UBMDCalculator):
        nl_s = 0.0
        calc_s = 0.0

        def neighbours(self, positions, cell, pbc):
            t0 = time.perf_counter()
            out = (ase_neighbour_list(positions, cell, pbc, self.cutoff) if ase_list
                   else super().neighbours(positions, cell, pbc))
            self.nl_s += time.perf_counter() - t0
            return out

        def calculate(self, *args, **kwargs):
            t0 = time.perf_counter()
            super().calculate(*args, **kwargs)
            self.calc_s += time.perf_counter() - t0

    return TimedCalculator


def _ase_worker(spec_path: str) -> None:
    import numpy as np
    import torch
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    atoms = M.build_system(spec["system"], spec["n"])
    calc = timed_calculator(spec.get("neighbour_list") == "ase")(
        spec["model"], tau_forces=TAU_F, window=WINDOW, device=spec["device"])
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(1))
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs,
                   rng=np.random.default_rng(2))
    atoms.get_forces()  # setup evaluation (untimed), like LAMMPS `run 0`
    calc.nl_s = calc.calc_s = 0.0
    Path("/proc/self/clear_refs").write_text("5")
    t0, c0 = time.perf_counter(), time.process_time()
    dyn.run(spec["steps"])
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    hwm = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            hwm = int(line.split()[1]) / 1024.0
    print("BENCH " + json.dumps({"natoms": len(atoms), "time_s": dt, "cpu_s": cpu, "nl_s": calc.nl_s,
                                 "calc_s": calc.calc_s, "max_rss_mib": hwm,
                                 "bias_scale_forces": calc.results.get("bias_scale_forces")}),
          flush=True)


def run_ase(system, n, steps, model, device, neighbour_list="vesin") -> dict:
    M.WORK.mkdir(parents=True, exist_ok=True)
    sp = M.WORK / f"ase_spec_{os.getpid()}.json"
    sp.write_text(json.dumps({"system": system, "n": n, "steps": steps, "model": str(model),
                              "device": device, "neighbour_list": neighbour_list}))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(module_command("ase_vs_lammps", "_ase_worker", sp),
                       capture_output=True, text=True, env=module_env(env), timeout=7200)
    for line in p.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    raise RuntimeError(f"ASE worker failed (rc={p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")


def run_lammps(system, n, steps, model, device) -> dict:
    spec = {"plugin": str(M.plugin_copy()), "data": str(M.data_file(system, n)),
            "elements": M.ELEMENTS[system], "model": str(model), "modes": ["bias_f"],
            "steps": steps, "warmup": 0, "repeats": 1,
            "integrator": "fix int all nve\nfix lang all langevin 300 300 0.01 12345",
            "pair_extra": f"device {device}" if device != "cpu" else ""}
    r = M.run_worker(spec)
    return {"natoms": r["natoms"], "time_s": r["times_s"]["bias_f"][0], "cpu_s": r["cpu_s"]["bias_f"][0],
            "max_rss_mib": r["max_rss_mib"]["bias_f"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cmd", nargs="?", default="run")
    p.add_argument("spec", nargs="?")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--system", default="cual", choices=["cual", "mil53"])
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--neighbour-list", default="vesin", choices=["vesin", "ase"],
                   help="ASE side: ubmd's vesin list (default) or ASE's primitive_neighbor_list")
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    ns = p.parse_args(argv)
    if ns.cmd == "_ase_worker":
        _ase_worker(ns.spec)
        return 0
    name = ("ase_vs_lammps" + ("_quick" if ns.quick else "") + ("_cuda" if ns.device == "cuda" else "")
            + ("_asenl" if ns.neighbour_list == "ase" else ""))
    if ns.device == "cuda" and not M.cuda_available():
        print("device cuda: no GPU visible to torch here -> skipped")
        (M.RESULTS / f"{name}.json").write_text(json.dumps({"benchmark": "ase_vs_lammps",
                                                            "device": "cuda", "skipped": "no GPU"}))
        return 0
    sizes = SIZES_QUICK if ns.quick else SIZES
    if ns.sizes:
        sizes = {n: sizes[n] for n in ns.sizes}
    if ns.system == "mil53":
        sizes = {({108: 100}.get(k, k)): v for k, v in sizes.items()}
    model = M.model_path(ns.system, ns.dtype)
    print(f"load average {M.load_average()}")
    rows = []
    for n, steps in sizes.items():
        res = {"ase": [], "lammps": []}
        loads = []
        for _ in range(ns.rounds):  # alternate the two so they see similar load
            loads.append(M.load_average())
            res["lammps"].append(run_lammps(ns.system, n, steps, model, ns.device))
            res["ase"].append(run_ase(ns.system, n, steps, model, ns.device, ns.neighbour_list))
        t_ase = statistics.median(r["time_s"] for r in res["ase"]) / steps
        t_lmp = statistics.median(r["time_s"] for r in res["lammps"]) / steps
        nl = statistics.median(r["nl_s"] / r["time_s"] for r in res["ase"])
        calc = statistics.median(r["calc_s"] / r["time_s"] for r in res["ase"])
        natoms = res["lammps"][0]["natoms"]
        c_ase = statistics.median(r["cpu_s"] for r in res["ase"]) / steps
        c_lmp = statistics.median(r["cpu_s"] for r in res["lammps"]) / steps
        row = {"system": ns.system, "dtype": ns.dtype, "ase_neighbour_list": ns.neighbour_list, "natoms": natoms, "steps": steps,
               "ase_s_per_step": t_ase, "lammps_s_per_step": t_lmp, "speedup_lammps": t_ase / t_lmp,
               "ase_cpu_s_per_step": c_ase, "lammps_cpu_s_per_step": c_lmp,
               "cpu_speedup_lammps": c_ase / c_lmp, "ase_nl_fraction": nl, "ase_calculator_fraction": calc,
               "ase_max_rss_mib": max(r["max_rss_mib"] for r in res["ase"]),
               "lammps_max_rss_mib": max(r["max_rss_mib"] for r in res["lammps"]),
               "loads": loads + [M.load_average()], "raw": res}
        rows.append(row)
        print(f"{ns.system} {ns.dtype} {natoms:6d} atoms {steps:4d} steps: ASE {t_ase * 1e3:9.1f} ms/step "
              f"(neighbour list {100 * nl:.0f} %, calculator {100 * calc:.0f} %)  LAMMPS "
              f"{t_lmp * 1e3:9.1f} ms/step  ratio {t_ase / t_lmp:5.2f} (CPU time {c_ase / c_lmp:5.2f})  RSS ASE {row['ase_max_rss_mib']:.0f} "
              f"MiB LAMMPS {row['lammps_max_rss_mib']:.0f} MiB  load {M.load_average()}", flush=True)
        (M.RESULTS / f"{name}.json").write_text(json.dumps(
            {"benchmark": "ase_vs_lammps", "quick": ns.quick, "device": ns.device, **M.machine_info(),
             "tau_forces": TAU_F, "window": WINDOW, "goal_speedup_1k": 10.0, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
