"""Throughput of ``pair_style ubmd`` in LAMMPS: atom-steps/s, ns/day, bias overhead, scaling, MPI,
peak memory.

Subcommands (each prints a table and writes JSON under benchmarks/results/):

    python -m benchmarks.md_speed prepare              # models + unit-cell data (build/bench/)
    python -m benchmarks.md_speed lammps [--quick]     # sizes x systems x dtypes x modes
    python -m benchmarks.md_speed mpi [--quick]        # 1 vs 2 MPI ranks (16k atoms)
    python -m benchmarks.md_speed profile [--quick]    # torch profiler of the TorchScript calls
    python -m benchmarks.md_speed plot                 # docs/performance_scaling.png

``--device cuda`` runs the pair style with ``device cuda`` (results go to *_cuda.json); without a
GPU visible to torch it is skipped with a message.

Systems: ``cual`` = fcc Cu/Al random alloy (25 % Al), a = 3.75 Å, replicated from the 4-atom
conventional cell, model trained for a short time on EMT labels (hidden [64, 64], cutoff 4.5 Å);
``mil53`` = MIL-53(Al) large-pore conventional cell (76 atoms, benchmarks/data/mil53) replicated,
model with species H C O Al, cutoff 5 Å, hidden [64, 64], NOT trained (descriptor statistics,
energy shift/scale and the posterior head fitted on EMT-labelled rattled cells; speed only).

Modes (the same LAMMPS process, interleaved, ``--repeats`` times, median reported):
``none`` (``uncertainty none``: a production MLIP), ``monitor`` (uncertainty total, no bias),
``bias_f`` (bias_forces 0.2), ``bias_fs`` (bias_forces 0.2 bias_stress 0.2), window 2 so the bias
is on from the third evaluation. fix nve, 300 K, dt = 0.5 fs, neighbour skin 1 Å, check every
step. Timing = wall time of ``run N pre no`` after an untimed warm-up ``run`` (setup excluded),
MPI barrier on both sides. Peak memory = VmHWM of each rank (reset with /proc/self/clear_refs
before each mode's warm-up, so it is the peak of that mode, on top of what was already resident).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ubmd.plugin import STYLES_NAME, plugin_path

from . import DATA, RESULTS, ROOT, module_command, module_env

WORK = ROOT / "build" / "bench"
MODELS = WORK / "models"
VENV_BIN = Path(sys.executable).parent
MIL53 = DATA / "mil53" / "MIL-53Al_lp_conventional.extxyz"
DT_PS = 0.0005  # 0.5 fs in metal units

MODES = {
    "none": "uncertainty none",
    "monitor": "uncertainty total",
    "bias_f": "bias_forces 0.2 window 2",
    "bias_fs": "bias_forces 0.2 bias_stress 0.2 window 2",
}
# replications of the unit cell giving ~1k, 4k, 16k, 32k atoms (cual: 4 atoms, mil53: 76 atoms)
REPL = {
    "cual": {1000: (5, 5, 10), 4000: (10, 10, 10), 16000: (10, 20, 20), 32000: (20, 20, 20),
             108: (3, 3, 3), 10000: (10, 10, 25)},
    "mil53": {1000: (3, 2, 2), 4000: (6, 3, 3), 16000: (9, 4, 6), 32000: (12, 6, 6),
              100: (1, 1, 1), 10000: (8, 4, 4)},
}
ELEMENTS = {"cual": ["Cu", "Al"], "mil53": ["H", "C", "O", "Al"]}
CUTOFF = {"cual": 4.5, "mil53": 5.0}
HIDDEN = [64, 64]


# ----------------------------------------------------------------------------- helpers

def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict:
    info = {"machine": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        import importlib.metadata as md
        info["torch"] = md.version("torch")
        info["lammps"] = md.version("lammps")
    except Exception:  # noqa: BLE001
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                            capture_output=True, text=True).stdout.strip()
    except Exception:  # noqa: BLE001
        pass
    return info


def plugin_copy() -> Path:
    """A private copy of the plugin: the loader and the library it opens, side by side, in a
    folder named by their content hash (a rebuild of build/lammps_plugin, or another benchmark
    using another build, never changes the files a running benchmark loads)."""
    import hashlib

    try:
        src_plugin = plugin_path()  # $UBMD_PLUGIN, else the package's own (scripts/build_plugin.sh)
    except FileNotFoundError as exc:
        sys.exit(str(exc))
    impl = src_plugin.parent / STYLES_NAME
    if not impl.exists():
        sys.exit(f"plugin {src_plugin} without its {impl.name}: run scripts/build_plugin.sh")
    blobs = {src.name: src.read_bytes() for src in (src_plugin, impl)}
    digest = hashlib.sha256(b"".join(blobs[k] for k in sorted(blobs))).hexdigest()[:12]
    dst_dir = WORK / "plugin" / digest
    if not (dst_dir / src_plugin.name).exists():
        tmp_dir = WORK / "plugin" / f".{digest}.{os.getpid()}"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        for name, data in blobs.items():
            (tmp_dir / name).write_bytes(data)
            (tmp_dir / name).chmod(0o755)
        try:
            tmp_dir.rename(dst_dir)
        except OSError:  # another process made the same copy first
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return dst_dir / src_plugin.name


def unit_cell(system: str):
    import numpy as np
    from ase import Atoms
    from ase.io import read

    if system == "cual":
        a = 3.75
        pos = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]) * a
        return Atoms("Cu4", positions=pos, cell=np.eye(3) * a, pbc=True)
    atoms = read(str(MIL53))
    cell = np.diag(np.diag(np.asarray(atoms.get_cell())))  # drop the 1e-5 Å tilts
    atoms.set_cell(cell, scale_atoms=False)
    atoms.wrap()
    return atoms


def build_system(system: str, n: int, seed: int = 0):
    """Replicated system (ASE Atoms), identical to what LAMMPS builds with `replicate`."""
    import numpy as np

    atoms = unit_cell(system).repeat(REPL[system][n])
    if system == "cual":
        rng = np.random.default_rng(seed)
        sym = np.array(["Cu"] * len(atoms), dtype=object)
        sym[rng.random(len(atoms)) < 0.25] = "Al"
        atoms.set_chemical_symbols(list(sym))
    return atoms


def write_data(path: Path, atoms, elements) -> None:
    """LAMMPS data file (atom_style atomic) of an orthorhombic cell."""
    import numpy as np
    from ase.data import atomic_masses, atomic_numbers

    cell = np.asarray(atoms.get_cell())
    assert np.allclose(cell, np.diag(np.diag(cell))), "orthorhombic cells only"
    lines = ["ubmd benchmark data", "", f"{len(atoms)} atoms", f"{len(elements)} atom types", "",
             f"0.0 {float(cell[0, 0])!r} xlo xhi", f"0.0 {float(cell[1, 1])!r} ylo yhi",
             f"0.0 {float(cell[2, 2])!r} zlo zhi", "", "Masses", ""]
    lines += [f"{k + 1} {float(atomic_masses[atomic_numbers[el]])!r}" for k, el in enumerate(elements)]
    lines += ["", "Atoms # atomic", ""]
    for i, (s, p) in enumerate(zip(atoms.get_chemical_symbols(), atoms.get_positions())):
        lines.append(f"{i + 1} {elements.index(s) + 1} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r}")
    path.write_text("\n".join(lines) + "\n")


def data_file(system: str, n: int) -> Path:
    path = WORK / "data" / f"{system}_{n}.data"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_data(path, build_system(system, n), ELEMENTS[system])
    return path


def model_path(system: str, dtype: str) -> Path:
    return MODELS / f"{system}_{dtype}.pt"


# ----------------------------------------------------------------------------- prepare

def _training_frames(system: str, n_frames: int, seed: int = 0):
    import numpy as np
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_frames):
        if system == "cual":
            atoms = unit_cell("cual").repeat((2, 2, 2))
            sym = np.where(rng.random(len(atoms)) < rng.uniform(0.0, 0.5), "Al", "Cu")
            atoms.set_chemical_symbols(list(sym))
            strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))
            atoms.set_cell(np.asarray(atoms.get_cell()) @ strain * rng.uniform(0.97, 1.04),
                           scale_atoms=True)
            atoms.rattle(stdev=rng.uniform(0.02, 0.12), seed=int(rng.integers(1 << 30)))
        else:
            atoms = unit_cell("mil53")
            atoms.rattle(stdev=0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
        frames.append(atoms)
    return frames


def prepare(ns) -> None:
    """Models (float32 and float64 files of the same weights) and data files."""
    import torch
    from ubmd.config import ModelConfig, TrainingConfig, UncertaintyConfig
    from ubmd.data import GraphDataset, species_map_from, split_indices
    from ubmd.model_file.export import ExportedModel, export_model
    from ubmd.uncertainty.features import FeatureModel
    from ubmd.model import MLIP
    from ubmd.prediction import evaluate_errors
    from ubmd.training.ensemble import train_ensemble
    from ubmd.training.trainer import fit_statistics
    from ubmd.uncertainty.fit import calibrate, fit_head

    torch.set_num_threads(1)
    MODELS.mkdir(parents=True, exist_ok=True)
    info = {}
    for system in ns.systems:
        if all(model_path(system, d).exists() for d in ("float32", "float64")) and not ns.force:
            print(f"{system}: models exist ({MODELS})")
            continue
        t0 = time.perf_counter()
        frames = _training_frames(system, 80 if system == "cual" else 24)
        smap = species_map_from(frames)
        data = GraphDataset(frames, CUTOFF[system], smap, dtype=torch.float64)
        split = split_indices(len(data), 0.2, 0, 0)
        train, valid = data.subset(split.train), data.subset(split.valid)
        mcfg = ModelConfig(cutoff=CUTOFF[system], hidden=list(HIDDEN))
        if system == "cual":
            tcfg = TrainingConfig(max_epochs=400, batch_size=8, max_time_s=ns.train_time,
                                  dtype="float32", progress=False, patience=400)
            member = train_ensemble(train, valid, mcfg, tcfg)[0].model.double()
        else:  # untrained: statistics only
            zs = sorted(smap, key=smap.get)
            member = MLIP(zs, mcfg.cutoff, mcfg.n_radial, mcfg.n_basis, list(HIDDEN)).double()
            fit_statistics(member, train)
            # random weights give random forces of the size of the fitted scale (~9 eV/Å RMS on
            # these EMT labels): scale down so the untrained MD stays sane (~1 eV/Å)
            with torch.no_grad():
                member.species_scale.mul_(0.1)
        member.eval()
        fm = FeatureModel([member], "last_layer")
        ucfg = UncertaintyConfig()
        head = fit_head(fm, train, ucfg)
        calibrate(fm, head, valid, ucfg)
        em = ExportedModel(fm, head)
        errs = evaluate_errors(em.to(torch.float64), valid)
        for dtype in ("float64", "float32"):
            export_model(ExportedModel(fm, head), model_path(system, dtype), getattr(torch, dtype))
            fm, head = fm.double(), head.double()
        info[system] = {"trained": system == "cual", "n_frames": len(frames),
                        "valid_errors": errs, "prepare_s": time.perf_counter() - t0,
                        "cutoff": CUTOFF[system], "hidden": HIDDEN, "feature_dim": fm.dim,
                        "species": ELEMENTS[system]}
        print(f"{system}: {info[system]}")
    if info:
        old = {}
        p = MODELS / "models.json"
        if p.exists():
            old = json.loads(p.read_text())
        old.update(info)
        p.write_text(json.dumps(old, indent=1))


# ----------------------------------------------------------------------------- LAMMPS worker

def _worker(spec_path: str) -> None:
    """Runs inside `[mpirun -np P] python -m benchmarks.md_speed _worker spec.json`; prints one
    JSON line."""
    from mpi4py import MPI
    from ubmd.plugin import import_lammps

    lammps = import_lammps()  # torch before liblammps: libtorch keeps its own BLAS
    spec = json.loads(Path(spec_path).read_text())
    comm = MPI.COMM_WORLD
    lmp = lammps.lammps(cmdargs=["-nocite", "-screen", "none", "-log", spec.get("log", "none")],
                        comm=comm)
    els = " ".join(spec["elements"])
    lmp.commands_string(f"""
units metal
atom_style atomic
atom_modify map array
boundary {spec.get('boundary', 'p p p')}
plugin load {spec['plugin']}
read_data {spec['data']}
{spec.get('replicate', '')}
neighbor {spec.get('skin', 1.0)} bin
neigh_modify every 1 delay 0 check yes
timestep {DT_PS}
velocity all create {spec.get('temperature', 300.0)} 12345 mom yes rot no dist gaussian
{spec.get('integrator', 'fix int all nve')}
thermo {10 ** 9}
""")
    natoms = int(lmp.get_natoms())
    x0 = lmp.gather_atoms("x", 1, 3)  # every mode starts from the same state
    box0 = lmp.extract_box()  # (boxlo, boxhi, xy, yz, xz, ...): NPT changes the box
    styles = spec.get("mode_styles", MODES)
    timings: dict[str, list[float]] = {m: [] for m in spec["modes"]}
    hwm: dict[str, float] = {m: 0.0 for m in spec["modes"]}
    extra: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}  # process CPU time of the timed run (max over ranks)
    for rep in range(spec["repeats"]):
        for mode in spec["modes"]:
            if spec.get("reset_box"):
                (lo, hi) = box0[0], box0[1]
                lmp.command("change_box all " + " ".join(
                    f"{d} final {lo[k]!r} {hi[k]!r}" for k, d in enumerate("xyz")) + " units box")
            lmp.scatter_atoms("x", 1, 3, x0)
            lmp.command(f"velocity all create {spec.get('temperature', 300.0)} 12345 mom yes rot no "
                        "dist gaussian")
            Path("/proc/self/clear_refs").write_text("5")
            lmp.command(f"pair_style ubmd {styles[mode]} {spec.get('pair_extra', '')}")
            lmp.command(f"pair_coeff * * {spec.get('models', {}).get(mode, spec['model'])} {els}")
            if rep == 0 and mode == spec["modes"][0]:
                lmp.commands_string(f"compute ubmd_g all pair ubmd\nvariable ubmd_sf equal c_ubmd_g[3]\n"
                                    f"thermo_style custom step pe c_ubmd_g[3]\nthermo {10 ** 9}")
            lmp.command(f"run {spec['warmup']}")
            comm.Barrier()
            t0, c0 = time.perf_counter(), time.process_time()
            lmp.command(f"run {spec['steps']} pre no post no")
            c1 = time.process_time()
            comm.Barrier()
            dt = time.perf_counter() - t0
            timings[mode].append(dt)
            cpu.setdefault(mode, []).append(comm.allreduce(c1 - c0, op=MPI.MAX))
            kb = 0
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM"):
                    kb = int(line.split()[1])
            hwm[mode] = max(hwm[mode], comm.allreduce(kb, op=MPI.MAX) / 1024.0)
            if "tau_forces" in styles[mode] or mode.startswith("bias"):
                extra.setdefault(mode, []).append(float(lmp.extract_variable("ubmd_sf")))
    if comm.rank == 0:
        print("BENCH " + json.dumps({"natoms": natoms, "times_s": timings, "max_rss_mib": hwm,
                                     "bias_scale_forces": extra, "ranks": comm.size,
                                     "cpu_s": cpu}), flush=True)
    lmp.close()


def run_worker(spec: dict, nprocs: int = 1, timeout: float = 3600, env_extra: dict | None = None
               ) -> dict:
    """Run :func:`_worker` on ``spec`` (``env_extra``: more environment variables, e.g. another
    ubmd first on PYTHONPATH, or UBMD_ONE_PASS=0)."""
    WORK.mkdir(parents=True, exist_ok=True)
    sp = WORK / f"spec_{os.getpid()}.json"
    sp.write_text(json.dumps(spec))
    cmd = module_command("md_speed", "_worker", sp)
    if nprocs > 1:
        cmd = [str(VENV_BIN / "mpirun"), "-np", str(nprocs)] + cmd
    env = dict(module_env(), OMP_NUM_THREADS="1", **(env_extra or {}))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=WORK)
    for line in p.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    raise RuntimeError(f"worker failed (rc={p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")


def cuda_available() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def summarise(res: dict, steps: int) -> dict:
    """Per-mode medians: s/step, µs/atom-step, atom-steps/s, ns/day; overheads vs mode none."""
    n = res["natoms"]
    out = {}
    for mode, ts in res["times_s"].items():
        med = statistics.median(ts) / steps
        out[mode] = {"s_per_step": med, "us_per_atom_step": 1e6 * med / n,
                     "atom_steps_per_s": n / med, "ns_per_day": DT_PS * 1e-3 / med * 86400,
                     "max_rss_mib": res["max_rss_mib"][mode], "times_s": ts}
        if "cpu_s" in res:
            cmed = statistics.median(res["cpu_s"][mode]) / steps
            out[mode].update(cpu_s_per_step=cmed, cpu_us_per_atom_step=1e6 * cmed / n,
                             cpu_s=res["cpu_s"][mode])
    base = out.get("none")
    for mode, r in out.items():
        if base:
            r["ratio_to_none"] = r["s_per_step"] / base["s_per_step"]
        if "monitor" in out:
            r["ratio_to_monitor"] = r["s_per_step"] / out["monitor"]["s_per_step"]
    # ratio per repeat (same repeat = adjacent in time), median: more robust to load drifts
    if base:
        for mode, ts in res["times_s"].items():
            rr = [a / b for a, b in zip(ts, res["times_s"]["none"])]
            out[mode]["ratio_to_none_paired_median"] = statistics.median(rr)
            if "cpu_s" in res:
                out[mode]["cpu_ratio_to_none"] = (statistics.median(res["cpu_s"][mode])
                                                  / statistics.median(res["cpu_s"]["none"]))
    return out


def steps_for(n: int, quick: bool) -> tuple[int, int]:
    """(timed steps, repeats): ~8e4 atom-steps per timed run (a few s at ~50-150 µs/atom-step),
    3 repeats below 16k atoms, 2 above."""
    budget = 2e4 if quick else 4e4  # atom-steps per timed run
    steps = max(3, min(200, int(budget / n)))
    return steps, (3 if n < 16000 else 2)


BIG_MODES = ["none", "bias_fs"]  # modes timed at >= 16k atoms (time budget of a 2-core machine)


def cmd_lammps(ns) -> None:
    plugin = plugin_copy()
    device = ns.device
    if device == "cuda" and not cuda_available():
        print("device cuda: no GPU visible to torch here -> skipped (run on a GPU machine)")
        out = {"benchmark": "md_speed", "device": "cuda", "skipped": "no GPU visible"}
        (RESULTS / "md_speed_cuda.json").write_text(json.dumps(out, indent=1))
        return
    sizes = ns.sizes or ([1000] if ns.quick else [1000, 4000, 16000, 32000])
    rows = []
    t_start = time.time()
    for system in ns.systems:
        for dtype in ns.dtypes:
            for n in sizes:
                steps, repeats = steps_for(n, ns.quick)
                modes = ns.modes if (n < 16000 or ns.all_modes) else [m for m in ns.modes if m in BIG_MODES]
                spec = {"plugin": str(plugin), "data": str(data_file(system, n)),
                        "elements": ELEMENTS[system], "model": str(model_path(system, dtype)),
                        "modes": modes, "steps": steps, "warmup": 3 if n < 16000 else 2,
                        "repeats": ns.repeats or repeats,
                        "pair_extra": f"device {device}" if device != "cpu" else ""}
                la0 = load_average()
                res = run_worker(spec)
                summ = summarise(res, steps)
                row = {"system": system, "dtype": dtype, "natoms": res["natoms"], "steps": steps,
                       "repeats": spec["repeats"], "load_before": la0, "load_after": load_average(),
                       "modes": summ}
                rows.append(row)
                print_row(row)
                _save(ns, rows, t_start)
    _save(ns, rows, t_start)


def print_row(row: dict) -> None:
    for mode, r in row["modes"].items():
        print(f"{row['system']:6s} {row['dtype']:8s} {row['natoms']:6d} {mode:8s} "
              f"{r['s_per_step'] * 1e3:9.2f} ms/step {r['us_per_atom_step']:7.2f} us/atom-step "
              f"{r['atom_steps_per_s']:10.0f} atom-steps/s {r['ns_per_day']:7.4f} ns/day "
              f"x{r.get('ratio_to_none', float('nan')):.3f} (paired x{r.get('ratio_to_none_paired_median', float('nan')):.3f}) "
              f"RSS {r['max_rss_mib']:.0f} MiB  CPU {r.get('cpu_us_per_atom_step', float('nan')):.1f} us/atom-step "
              f"(x{r.get('cpu_ratio_to_none', float('nan')):.3f})  load {row['load_after'][0]}", flush=True)


def _save(ns, rows, t_start) -> None:
    """Merge into the existing JSON: rows of the same (system, dtype, natoms) are replaced, so
    the matrix can be filled by several invocations (e.g. --systems/--dtypes/--sizes subsets)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = ("md_speed" + ("_quick" if ns.quick else "") + ("_cuda" if ns.device == "cuda" else "")
            + (ns.tag or ""))
    path = RESULTS / f"{name}.json"
    key = lambda r: (r["system"], r["dtype"], r["natoms"])  # noqa: E731
    old = json.loads(path.read_text()).get("results", []) if path.exists() else []
    new_keys = {key(r) for r in rows}
    rows = [r for r in old if key(r) not in new_keys] + list(rows)
    rows.sort(key=lambda r: (r["system"], r["dtype"], r["natoms"]))
    out = {"benchmark": "md_speed", "quick": ns.quick, "device": ns.device, **machine_info(),
           "omp_num_threads": 1, "timestep_fs": 0.5, "skin_A": 1.0, "modes": MODES,
           "wall_s": time.time() - t_start, "goals": {"bias_overhead": 1.10, "scaling_flat": 0.15},
           "results": rows}
    path.write_text(json.dumps(out, indent=1))


# ----------------------------------------------------------------------------- MPI

def cmd_mpi(ns) -> None:
    plugin = plugin_copy()
    n = ns.natoms or (4000 if ns.quick else 16000)
    rows = []
    for system in ns.systems:
        for dtype in ns.dtypes:
            steps, _ = steps_for(n, ns.quick)
            spec = {"plugin": str(plugin), "data": str(data_file(system, n)),
                    "elements": ELEMENTS[system], "model": str(model_path(system, dtype)),
                    "modes": ns.modes, "steps": steps, "warmup": 3, "repeats": ns.repeats or 3}
            res = {}
            # alternate 1 and 2 ranks so both see similar load
            for rep in range(ns.rounds):
                for p in (1, 2):
                    la0 = load_average()
                    r = run_worker(spec, nprocs=p)
                    res.setdefault(p, []).append({"summary": summarise(r, steps), "load_before": la0,
                                                  "load_after": load_average()})
            row = {"system": system, "dtype": dtype, "natoms": n, "steps": steps, "rounds": res}
            speed = {}
            for mode in ns.modes:
                t1 = statistics.median(x["summary"][mode]["s_per_step"] for x in res[1])
                t2 = statistics.median(x["summary"][mode]["s_per_step"] for x in res[2])
                rss1 = max(x["summary"][mode]["max_rss_mib"] for x in res[1])
                rss2 = max(x["summary"][mode]["max_rss_mib"] for x in res[2])
                c1 = statistics.median(x["summary"][mode].get("cpu_s_per_step", float("nan")) for x in res[1])
                c2 = statistics.median(x["summary"][mode].get("cpu_s_per_step", float("nan")) for x in res[2])
                speed[mode] = {"s_per_step_1": t1, "s_per_step_2": t2, "speedup": t1 / t2,
                               "cpu_s_per_step_1": c1, "cpu_s_per_step_2_max_rank": c2,
                               "cpu_speedup": c1 / c2,
                               "max_rss_mib_1": rss1, "max_rss_mib_2_per_rank": rss2}
                print(f"{system:6s} {dtype:8s} {n:6d} {mode:8s} 1 rank {t1 * 1e3:8.1f} ms/step  "
                      f"2 ranks {t2 * 1e3:8.1f} ms/step  speedup {t1 / t2:.2f} (CPU-time based {c1 / c2:.2f})  "
                      f"RSS {rss1:.0f} / {rss2:.0f} MiB per rank  load {load_average()}", flush=True)
            row["speedup"] = speed
            rows.append(row)
            name = "md_mpi" + ("_quick" if ns.quick else "")
            out = {"benchmark": "md_mpi", "quick": ns.quick, **machine_info(), "goal_speedup": 1.8,
                   "results": rows}
            (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1))


# ----------------------------------------------------------------------------- profile

def cmd_profile(ns) -> None:
    """Same TorchScript calls as the C++ core (Evaluation::forward / total_uncertainty), timed
    stage by stage and under torch.profiler, on the graph LAMMPS would build (local atoms +
    periodic images as extra nodes)."""
    import numpy as np
    import torch
    from ubmd.neighbours import neighbour_list

    torch.set_num_threads(1)
    rows = []
    for system in ns.systems:
        for dtype in ns.dtypes:
            n = ns.natoms or (1000 if ns.quick else 4000)
            atoms = build_system(system, n)
            model = torch.jit.load(str(model_path(system, dtype)))
            tdt = getattr(torch, dtype)
            i, j, s = neighbour_list(atoms.get_positions(), np.asarray(atoms.get_cell()), True,
                                     CUTOFF[system])
            ev0 = torch.tensor(atoms.get_positions()[j] - atoms.get_positions()[i]
                               + s @ np.asarray(atoms.get_cell()), dtype=tdt)
            ei = torch.tensor(np.stack([i, j]))
            from ase.data import atomic_numbers as znum
            zs = sorted(znum[el] for el in ELEMENTS[system])  # model species order (by Z)
            smap = {z: k for k, z in enumerate(zs)}
            sp = torch.tensor([smap[int(z)] for z in atoms.numbers])
            nat = len(atoms)

            def stage_times(with_features: bool, bias: bool):
                t = {}
                ev = ev0.clone().requires_grad_(True)
                t0 = time.perf_counter()
                e, phi = model.atomic(ev, ei, sp, nat, with_features)
                t1 = time.perf_counter()
                (ge,) = torch.autograd.grad(e.sum(), ev, retain_graph=with_features)
                t2 = time.perf_counter()
                t["forward"], t["backward_E"] = t1 - t0, t2 - t1
                if with_features:
                    phis = phi.sum(0)
                    u, v = model.total_uncertainty(phis.detach(), float(nat))
                    t3 = time.perf_counter()
                    t["total_uncertainty"] = t3 - t2
                    if bias:
                        (gu,) = torch.autograd.grad((phis * v).sum(), ev)
                    t4 = time.perf_counter()
                    t["backward_u"] = t4 - t3
                    model.atomic_uncertainty(phi.detach())
                    t["atomic_uncertainty"] = time.perf_counter() - t4
                return t

            res = {}
            for label, wf, bias in (("none", False, False), ("monitor", True, False),
                                    ("bias", True, True)):
                stage_times(wf, bias)  # warm-up (TorchScript profiling executor)
                stage_times(wf, bias)
                reps = [stage_times(wf, bias) for _ in range(ns.repeats or 3)]
                med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
                med["total"] = sum(med.values())
                res[label] = med
                print(f"{system} {dtype} {nat} {label:8s} " +
                      " ".join(f"{k}={v * 1e3:.1f}ms" for k, v in med.items()), flush=True)
            res["split"] = split_profile(system, dtype, ev0, ei, sp, nat, ns.repeats or 3)
            print(f"{system} {dtype} {nat} split " +
                  " ".join(f"{k}={v * 1e3:.1f}ms" for k, v in res["split"].items()), flush=True)
            # operator-level profile of the biased step
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
                stage_times(True, True)
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
            print(table)
            top = [{"name": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "calls": e.count}
                   for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:25]]
            rows.append({"system": system, "dtype": dtype, "natoms": nat, "n_edges": int(ei.shape[1]),
                         "stages_s": res, "top_ops_biased": top, "load": load_average()})
    name = "md_profile" + ("_quick" if ns.quick else "")
    (RESULTS / f"{name}.json").write_text(json.dumps({"benchmark": "md_profile", **machine_info(),
                                                       "results": rows}, indent=1))


def eager_member(system: str, dtype: str, pair_gemm: bool | None = None):
    """The (first) member of the prepared model file as an eager ``ubmd.model.MLIP`` (same
    weights; ``pair_gemm``: the descriptor's pair-mixing route, None: its default)."""
    import torch
    from ase.data import atomic_numbers as znum

    from ubmd.model import MLIP

    scripted = torch.jit.load(str(model_path(system, dtype)))
    zs = sorted(znum[el] for el in ELEMENTS[system])  # model species order (by Z)
    m = MLIP(zs, CUTOFF[system], 8, 12, list(HIDDEN), pair_gemm=pair_gemm).to(getattr(torch, dtype))
    keys = m.state_dict().keys()  # TorchScript also keeps the derived (non-persistent) buffers
    m.load_state_dict({k: v for k, v in getattr(scripted.features.members, "0").state_dict().items()
                       if k in keys})
    return m.eval()


def split_profile(system, dtype, ev0, ei, sp, nat, repeats):
    """The model cut at the moments A [n, nr, 20] (``GaussianMoments.moments`` /
    ``.invariants``, eager): how the biased step divides into the edge-level part (edge vectors
    -> radial x angular -> A, and its backward) and the atom-level part (A -> invariants -> MLP,
    energies and gradient features, and backward). The neighbour-slot index (graph only) is
    computed once, outside the timings."""
    import torch

    m = eager_member(system, dtype)
    d = m.descriptor
    flat, n_slots = d.slot_index(ei[0], nat)

    def edge_part(ev):
        return d.moments(ev, ei, sp, nat, flat, n_slots)

    def atom_part(a):
        e, xs, gs = m.readout_with_grads(d.invariants(a), sp[:nat])
        return e, gs[-1] * xs[-1]

    v = torch.randn(65, dtype=ev0.dtype) / nat
    out = {}
    samples = []
    for rep in range(repeats + 1):
        t = {}
        ev = ev0.clone().requires_grad_(True)
        t0 = time.perf_counter()
        a = edge_part(ev)
        t1 = time.perf_counter()
        al = a.detach().requires_grad_(True)
        e, phi = atom_part(al)
        t2 = time.perf_counter()
        (ga_e,) = torch.autograd.grad(e.sum(), al, retain_graph=True)
        (ga_u,) = torch.autograd.grad((phi.sum(0) * v).sum(), al)
        t3 = time.perf_counter()
        (g1,) = torch.autograd.grad(a, ev, ga_e, retain_graph=True)
        t4 = time.perf_counter()
        (g2,) = torch.autograd.grad(a, ev, ga_u)
        t5 = time.perf_counter()
        # both cotangents through the edge part in ONE backward: stack them (what a fused
        # edge-level backward with two right-hand sides would cost)
        ev2 = ev0.clone().requires_grad_(True)
        a2 = edge_part(ev2)
        t6 = time.perf_counter()
        (g12,) = torch.autograd.grad(a2, ev2, ga_e + ga_u)
        t7 = time.perf_counter()
        t.update(edge_forward=t1 - t0, atom_forward=t2 - t1, atom_backward_E_and_u=t3 - t2,
                 edge_backward_E=t4 - t3, edge_backward_u=t5 - t4, edge_backward_summed=t7 - t6)
        if rep:
            samples.append(t)
    for k in samples[0]:
        out[k] = statistics.median(s[k] for s in samples)
    return out


# ----------------------------------------------------------------------------- plot

def cmd_plot(ns) -> None:
    """µs per atom-step vs atoms: process CPU time (solid, robust on a shared machine) and wall
    time (dotted), 1 rank, per system / dtype / mode."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads((RESULTS / (ns.input or "md_speed.json")).read_text())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"none": "k", "monitor": "tab:blue", "bias_f": "tab:orange", "bias_fs": "tab:red"}
    for ax, system in zip(axes, ("cual", "mil53")):
        for dtype, marker in (("float32", "o"), ("float64", "s")):
            for mode, color in colors.items():
                rows = sorted((r for r in data["results"] if r["system"] == system
                               and r["dtype"] == dtype and mode in r["modes"]), key=lambda r: r["natoms"])
                if not rows:
                    continue
                x = [r["natoms"] for r in rows]
                cpu = [r["modes"][mode].get("cpu_us_per_atom_step", float("nan")) for r in rows]
                wall = [r["modes"][mode]["us_per_atom_step"] for r in rows]
                ax.plot(x, cpu, "-", marker=marker, color=color, label=f"{mode} {dtype} (CPU)")
                if mode in ("none", "bias_fs"):
                    ax.plot(x, wall, ":", marker=marker, color=color, alpha=0.4, mfc="none",
                            label=f"{mode} {dtype} (wall)")
        after = RESULTS / "md_speed_after.json"
        if after.exists():  # current code (after the P1-P3 commits), float32
            da = json.loads(after.read_text())
            for mode in ("none", "bias_fs"):
                rows = sorted((r for r in da["results"] if r["system"] == system
                               and r["dtype"] == "float32" and mode in r["modes"]), key=lambda r: r["natoms"])
                if rows:
                    ax.plot([r["natoms"] for r in rows],
                            [r["modes"][mode]["cpu_us_per_atom_step"] for r in rows], "--", marker="D",
                            color=colors[mode], lw=2, label=f"{mode} float32 AFTER (CPU)")
        ax.set_xscale("log")
        ax.set_xlabel("atoms")
        ax.set_ylabel("µs per atom-step (1 rank, 1 thread)")
        ax.set_title({"cual": "fcc Cu/Al, EMT-trained, rc 4.5 Å, 18 nbrs/atom",
                      "mil53": "MIL-53(Al), untrained, rc 5 Å"}[system], fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6.5, ncol=2, loc="upper left")
    fig.suptitle("pair_style ubmd: time per atom-step; before = commit 65ceb05 (load 3.5-9, wall "
                 "inflated), AFTER = with P1-P3 (load ~2.2)", fontsize=9)
    fig.tight_layout()
    out = ROOT / "docs" / "performance_scaling.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("prepare", "lammps", "mpi", "profile", "plot"):
        s = sub.add_parser(name)
        s.add_argument("--systems", nargs="+", default=["cual", "mil53"])
        s.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
        s.add_argument("--modes", nargs="+", default=list(MODES))
        s.add_argument("--quick", action="store_true")
        s.add_argument("--repeats", type=int, default=None)
        s.add_argument("--sizes", type=int, nargs="+", default=None)
        s.add_argument("--natoms", type=int, default=None)
        s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        s.add_argument("--rounds", type=int, default=2)
        s.add_argument("--force", action="store_true")
        s.add_argument("--train-time", type=float, default=120.0)
        s.add_argument("--input", default=None)
        s.add_argument("--all-modes", action="store_true", help="all modes also at >= 16k atoms")
        s.add_argument("--tag", default="", help="suffix of the results file name (e.g. _after)")
    w = sub.add_parser("_worker")
    w.add_argument("spec")
    ns = p.parse_args(argv)
    if ns.cmd == "_worker":
        _worker(ns.spec)
        return 0
    if ns.cmd != "plot":
        print(f"load average {load_average()}  {machine_info()}")
    {"prepare": prepare, "lammps": cmd_lammps, "mpi": cmd_mpi, "profile": cmd_profile,
     "plot": cmd_plot}[ns.cmd](ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
