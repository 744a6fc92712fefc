"""The stages of :mod:`benchmarks.gpu_check` that need no LAMMPS: ``agree_calc`` (the ASE
calculator on the checked device against the CPU), ``train`` (training throughput with
``training.device``) and ``step_calc`` (a 32k-atom biased evaluation through the calculator).
What each measures: the docstring of :mod:`benchmarks.gpu_check`."""

from __future__ import annotations

import itertools
import os
import statistics
import time
from pathlib import Path

from . import ROOT
from .gpu_check import (
    BIAS,
    TOL32,
    TOL64,
    calc_results,
    compare,
    failed_case,
    guarded,
    work_paths,
)


def stage_agree_calc(spec: dict) -> dict:
    import torch
    from ase.io import read

    torch.set_num_threads(1 if spec["dry_run"] else min(8, os.cpu_count() or 1))
    work = Path(spec["work"])
    frames = read(str(work / "agree.traj"), ":")
    out, ok = {}, True
    names = ("sketch_float64", "last_layer_float32") if spec["dry_run"] else tuple(work_paths(work))
    for name in names:
        path = work_paths(work)[name]
        tol = TOL64 if name.endswith("float64") else TOL32
        ref, err = guarded(calc_results, str(path), frames, "cpu")
        got, err = (None, err) if err else guarded(calc_results, str(path), frames, spec["device"])
        if err:
            out[name] = failed_case(err, tol)
            ok = False
            continue
        res = [compare(g, r, tol) for g, r in zip(got, ref)]
        out[name] = {"worst": max(r["worst"] for r in res), "tol": tol,
                     "ok": all(r["ok"] for r in res), "steps": res,
                     "bias_forces_rms": float(torch.tensor(ref[-1]["bias_forces"]).pow(2).mean().sqrt())}
        ok = ok and out[name]["ok"]
    return {"ok": ok, "cases": out}



def stage_train(spec: dict) -> dict:
    import torch
    from ubmd.config import ModelConfig, TrainingConfig
    from ubmd.data import GraphDataset, read_structures, species_map_from, split_indices
    from ubmd.training.trainer import train_model

    from .train_speed import CAMPAIGNS

    ncpu = os.cpu_count() or 1
    if spec["dry_run"]:
        cases, epochs, n_max = ["ala2"], 2, 16
        runs = [("cpu", 1), (spec["device"], 1)]
    else:
        cases, epochs, n_max = ["ala2", "mil53"], 4, None
        runs = [(spec["device"], 1), ("cpu", 1), ("cpu", ncpu)]
    out = {}
    for name in cases:
        files, every, n_frames, valid_fraction, model, training = CAMPAIGNS[name]
        frames = []
        for f in files:
            frames.extend(read_structures(str(ROOT / f)))
        frames = frames[::every][:n_max or n_frames]
        mcfg = ModelConfig(**model)
        data = GraphDataset(frames, mcfg.cutoff, species_map_from(frames))
        split = split_indices(len(data), valid_fraction, 0, 0)
        train, valid = data.subset(split.train), data.subset(split.valid)
        rows = []
        for device, threads in runs:
            marks = [time.perf_counter()]
            tcfg = TrainingConfig(max_epochs=epochs, patience=10 ** 6, progress=False, seed=0,
                                  device=device, num_threads=threads, **training)

            def mark(epoch, n, rec, done, marks=marks):
                if not done:
                    marks.append(time.perf_counter())
            res, err = guarded(train_model, train, valid, mcfg, tcfg, on_epoch=mark)
            if err:
                rows.append({"device": device, "threads": threads, "error": err})
                continue
            epoch_s = [b - a for a, b in itertools.pairwise(marks)]
            steady = statistics.median(epoch_s[1:]) if len(epoch_s) > 1 else epoch_s[0]
            last = res.history[-1]
            rows.append({"device": device, "threads": threads, "epoch_s": epoch_s,
                         "structures_per_s": len(train) / steady, "train_time_s": res.time_s,
                         "energy_rmse": last.get("energy_rmse"), "forces_rmse": last.get("forces_rmse")})
            print(f"train {name} {device} x{threads}: {rows[-1]['structures_per_s']:.1f} structures/s "
                  f"(epochs {[round(e, 2) for e in epoch_s]} s), valid E {last.get('energy_rmse')}, "
                  f"F {last.get('forces_rmse')}", flush=True)
        torch.set_num_threads(1)
        out[name] = {"n_train": len(train), "n_valid": len(valid), "atoms": len(frames[0]),
                     "epochs": epochs, "model": model, "training": training, "runs": rows}
    return {"ok": all("error" not in r for c in out.values() for r in c["runs"]), "cases": out}


def stage_step_calc(spec: dict) -> dict:
    """The 32k-atom biased evaluation (float32, sketched features) through the calculator."""
    import torch
    from ase.calculators.calculator import all_changes
    from ase.io import read
    from ubmd.calculator import UBMDCalculator

    work = Path(spec["work"])
    atoms = read(str(work / "big.traj"))
    model = str(work_paths(work)["sketch_float32"])
    dry = spec["dry_run"]

    def timed(device: str, warm: int, reps: int) -> dict:
        torch.set_num_threads(1 if dry else os.cpu_count() or 1)
        calc = UBMDCalculator(model, device=device, **dict(BIAS, window=2))
        times = []
        for _ in range(warm + reps):
            atoms.positions[0, 0] += 1e-4  # a new structure each call
            t0 = time.perf_counter()
            calc.calculate(atoms, ["energy", "forces"], all_changes)  # numpy results: synced
            times.append(time.perf_counter() - t0)
        med = statistics.median(times[warm:])
        row = {"device": device, "s_per_eval": med, "us_per_atom": 1e6 * med / len(atoms),
               "times_s": times}
        if device.startswith("cuda"):
            row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        print(f"step_calc {device}: {1000 * med:.1f} ms per biased evaluation", flush=True)
        return row

    out = {"atoms": len(atoms), "ok": True}
    for role, device, (warm, reps) in (("device", spec["device"], (1, 1) if dry else (3, 4)),
                                       ("cpu", "cpu", (1, 1) if dry else (2, 2))):
        row, err = guarded(timed, device, warm, reps)
        out[role] = row or {"device": device, "error": err}
        out["ok"] = out["ok"] and err is None
    return out
