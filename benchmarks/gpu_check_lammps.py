"""The LAMMPS stages of :mod:`benchmarks.gpu_check` (``agree_lammps``, ``step_lammps``) and the
worker process that times MD steps (``python -m benchmarks.gpu_check_lammps _worker SPEC``).

``agree_lammps``: ``run 0`` of the rattled MIL-53 cell with ``pair_style ubmd ... device D`` for
D = the checked device and cpu, float64 models with sketched and last-layer features, plain
(``uncertainty none``) and biased (tau_F = tau_sigma = 0.25, window 1, weight of H 0): energy,
forces, virial (eV), the five globals of ``compute pair ubmd`` and u_i of ``compute ubmd/atom``;
the biased CPU run is also compared with :class:`ubmd.calculator.UBMDCalculator` on the CPU.

``step_lammps``: one LAMMPS process per device (the checked one first), fix nve from 300 K,
dt 0.5 fs, skin 1 Å checked every step; per mode (plain, biased with sketched features, biased
with last-layer features; float32 model files) an untimed ``run`` of a few steps, then a timed
``run N pre no post no``. The CPU process runs torch with every core (OMP_NUM_THREADS, which
the pair style passes on to torch), the device process with one CPU thread. Peak GPU memory
from torch's caching allocator (the plugin's libtorch is the one this Python process loaded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import ROOT, module_command, module_env
from .gpu_check import (
    BIAS,
    ELEMENTS,
    TOL64,
    TOL_LAMMPS_CALC,
    calc_results,
    compare,
    failed_case,
    guarded,
    work_paths,
)

NKTV2P = 1.6021765e6  # metal units: bar per eV/Å^3
STYLE_BIAS = "tau_forces {tau_forces} tau_stress {tau_stress} window {window} weights H 0.0".format(**BIAS)
STEP_STYLE = "tau_forces 0.25 window 2 weights H 0.0"


def _header(plugin: str, data: str) -> str:
    return f"""units metal
atom_style atomic
atom_modify map array
boundary p p p
plugin load {plugin}
read_data {data}
"""


def single_point(lammps, plugin: str, data: str, model: str, style: str, device: str,
                 dump: Path) -> dict:
    """``run 0``: energy, forces (by atom id), virial in eV (xx yy zz xy xz yz), the globals of
    ``compute pair ubmd`` and, with an uncertainty, u_i by atom id."""
    import numpy as np

    with_u = "uncertainty none" not in style
    lmp = lammps.lammps(cmdargs=["-nocite", "-screen", "none", "-log", "none"])
    try:
        lmp.commands_string(_header(plugin, data) + f"""
pair_style ubmd {style} device {device}
pair_coeff * * {model} {' '.join(ELEMENTS)}
compute g all pair ubmd
compute pvir all pressure NULL virial
{'compute ua all ubmd/atom' if with_u else ''}
thermo_style custom step pe vol c_pvir[1] c_g[1] c_g[2] c_g[3] c_g[4] c_g[5]
dump d all custom 1 {dump} id fx fy fz{' c_ua' if with_u else ''}
dump_modify d format float %.17g sort id
run 0
""")
        vol = lmp.get_thermo("vol")
        pvir = lmp.extract_compute("pvir", 0, 1)
        glob = lmp.extract_compute("g", 0, 1)
        out = {"energy": lmp.get_thermo("pe"),
               "virial": [pvir[k] * vol / NKTV2P for k in range(6)],
               "globals": [glob[k] for k in range(5)]}
    finally:
        lmp.close()
    cols = np.loadtxt(dump, skiprows=9, ndmin=2)
    out["forces"] = cols[:, 1:4].tolist()
    if with_u:
        out["atomic_uncertainty"] = cols[:, 4].tolist()
    return out


def stage_agree_lammps(spec: dict) -> dict:
    from ase.io import read
    from ubmd.plugin import import_lammps, plugin_path

    lammps = import_lammps()
    work = Path(spec["work"])
    plugin, data = str(plugin_path()), str(work / "agree.data")
    frame = read(str(work / "agree.traj"), 0)
    out, ok = {}, True
    for name, model in work_paths(work).items():
        if not name.endswith("float64"):
            continue
        for label, style in (("plain", "uncertainty none"), ("bias", STYLE_BIAS)):
            ref, err = guarded(single_point, lammps, plugin, data, str(model), style, "cpu",
                               work / f"lmp_{name}_{label}_cpu.dump")
            got, err = (None, err) if err else guarded(
                single_point, lammps, plugin, data, str(model), style, spec["device"],
                work / f"lmp_{name}_{label}_device.dump")
            case = failed_case(err, TOL64) if err else compare(got, ref, TOL64)
            out[f"{name}_{label}"] = case
            ok = ok and case["ok"]
            if label == "bias" and ref is not None:  # LAMMPS (cpu) against the calculator (cpu)
                c = calc_results(str(model), [frame], "cpu")[0]
                s, vol = c["stress"], frame.get_volume()  # ASE Voigt: xx yy zz yz xz xy
                w = [-vol * s[k] for k in (0, 1, 2, 5, 4, 3)]  # virial incl. bias, eV
                want = {"energy": c["energy"], "forces": c["forces"], "virial": w,
                        "globals": [c["uncertainty"], c["bias_energy"], c["bias_scale_forces"],
                                    c["bias_scale_stress"], max(c["atomic_uncertainty"])],
                        "atomic_uncertainty": c["atomic_uncertainty"]}
                cross = compare(ref, want, TOL_LAMMPS_CALC)
                out[f"{name}_lammps_vs_calc"] = cross
                ok = ok and cross["ok"]
    return {"ok": ok, "cases": out}


# ----------------------------------------------------------------------------- step timing

def _worker(spec_path: str) -> None:
    """One LAMMPS process: every mode of the spec, one JSON line per mode into spec['result']."""
    from ubmd.plugin import import_lammps

    lammps = import_lammps()  # torch first: libtorch keeps its own BLAS
    import torch

    spec = json.loads(Path(spec_path).read_text())
    dev = spec["device"]
    cuda = dev.startswith("cuda")
    lmp = lammps.lammps(cmdargs=["-nocite", "-screen", "none", "-log", spec["log"]])
    lmp.commands_string(_header(spec["plugin"], spec["data"]) + """
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
timestep 0.0005
fix int all nve
thermo 1000000000
""")
    natoms = int(lmp.get_natoms())
    x0 = lmp.gather_atoms("x", 1, 3)
    for mode, (style, model) in spec["modes"].items():
        lmp.scatter_atoms("x", 1, 3, x0)
        lmp.command("velocity all create 300.0 12345 mom yes rot no dist gaussian")
        lmp.command(f"pair_style ubmd {style} device {dev}")
        lmp.command(f"pair_coeff * * {model} {' '.join(ELEMENTS)}")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        lmp.command(f"run {spec['warmup']}")
        warm = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        lmp.command(f"run {spec['steps']} pre no post no")
        if cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        row = {"mode": mode, "natoms": natoms, "steps": spec["steps"], "warmup_s": warm,
               "wall_s": wall, "cpu_s": cpu, "ms_per_step": 1000 * wall / spec["steps"],
               "us_per_atom_step": 1e6 * wall / spec["steps"] / natoms}
        if cuda:
            row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        with open(spec["result"], "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"step {dev} {mode}: {row['ms_per_step']:.1f} ms/step, {row['us_per_atom_step']:.2f} "
              f"us/atom-step (warm-up {warm:.1f} s)", flush=True)
    lmp.close()


def stage_step_lammps(spec: dict) -> dict:
    from ubmd.plugin import plugin_path

    work = Path(spec["work"])
    models = work_paths(work)
    modes = {"plain": ("uncertainty none", str(models["sketch_float32"])),
             "bias_sketch": (STEP_STYLE, str(models["sketch_float32"])),
             "bias_last_layer": (STEP_STYLE, str(models["last_layer_float32"]))}
    dry, ncpu = spec["dry_run"], os.cpu_count() or 1
    # role -> (device, warm-up steps, timed steps, torch threads, seconds at most)
    share = max(10.0, spec["limit"] - 10) / 2  # each process gets half of the stage's time
    runs = {"device": (spec["device"], 1 if dry else 3, 2 if dry else 10, 1, share),
            "cpu": ("cpu", 1, 1 if dry else 2, 1 if dry else ncpu, share)}
    out, ok = {"devices": {}}, True
    for role, (dev, warmup, steps, threads, limit) in runs.items():
        result = work / f"step_{role}.jsonl"
        result.unlink(missing_ok=True)
        wspec = {"device": dev, "plugin": str(plugin_path()), "data": str(work / "big.data"),
                 "modes": modes, "warmup": warmup, "steps": steps, "result": str(result),
                 "log": str(work / f"step_{role}.lammps.log")}
        sp = work / f"step_{role}.json"
        sp.write_text(json.dumps(wspec))
        env = dict(module_env(), OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(module_command("gpu_check_lammps", "_worker", sp), cwd=ROOT, check=False,
                                  env=env, timeout=limit)
            status = "ok" if proc.returncode == 0 else f"rc={proc.returncode}"
        except subprocess.TimeoutExpired:
            status = f"timeout after {limit} s"
        rows = [json.loads(ln) for ln in result.read_text().splitlines()] if result.exists() else []
        ok = ok and status == "ok"
        plain = next((r for r in rows if r["mode"] == "plain"), None)
        for r in rows:
            r["ratio_to_plain"] = r["wall_s"] / plain["wall_s"] if plain else None
        log = Path(wspec["log"])
        said = [ln.strip() for ln in (log.read_text(errors="replace").splitlines() if log.exists() else [])
                if "torch threads" in ln or "device cuda" in ln or "ubmd" in ln and "GPU" in ln]
        out["devices"][role] = {"device": dev, "torch_threads": threads, "status": status,
                                "pair_log": sorted(set(said))[:6],
                                "seconds": round(time.perf_counter() - t0, 1),
                                "modes": {r["mode"]: r for r in rows}}
    dev_modes, cpu_modes = out["devices"]["device"]["modes"], out["devices"]["cpu"]["modes"]
    out["speedup_device_vs_cpu"] = {m: cpu_modes[m]["wall_s"] / cpu_modes[m]["steps"] /
                                    (dev_modes[m]["wall_s"] / dev_modes[m]["steps"])
                                    for m in dev_modes if m in cpu_modes}
    out["ok"] = ok
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        _worker(sys.argv[2])
    else:
        sys.exit("usage: python -m benchmarks.gpu_check_lammps _worker SPEC.json "
                 "(run through python -m benchmarks.gpu_check)")
