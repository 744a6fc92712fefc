"""Training throughput (structures/s) of the default model on alanine dipeptide data.

Default model config (``ubmd.config.ModelConfig``: cutoff 5 Å, 8 radial, 12 basis, hidden
[256, 256]), default training config (batch 16, Adam, energy + forces loss) on
examples/ala2/data/*.extxyz (22 atoms, GFN2-xTB labels), float32 and float64. Timed with
:func:`ubmd.training.trainer.train_model` for ``--epochs`` epochs (validation every epoch on a 10 % split, as
in the default config; the time of the validation pass is included, as in real training), torch
intra-op threads = ``--threads``. Also reports the time of one training step alone (forward +
double backward + Adam) per batch, median over batches.

    python -m benchmarks.train_speed [--quick] [--threads 1]
    python -m benchmarks.train_speed --campaign ala2|mil53 [--epochs 4] [--json out.json]

``--campaign``: the model and training settings of the AL campaigns (benchmarks/configs/
ala2_common.yaml; the MIL-53 campaigns of benchmarks/mil53/campaigns), a fixed data set
(alanine: 240 GFN2-xTB frames of examples/ala2/data, 20 % validation; MIL-53: the GFN1-xTB
frames of examples/mil53/data/mil53_test_gfn1.extxyz, 10 % validation), ``--epochs`` epochs
without early stopping: structures/s per epoch (validation included) and per training step, and
the validation errors after every epoch (equal accuracy per epoch); structures/s also from the
second epoch on (``structures_per_s_epoch_cpu_steady``: what a round of 150-300 epochs sees,
without the first epoch's warm-up). Uses only what every
version of ``ubmd.training`` has, so ``benchmarks.bias_step_cost train`` runs it against the
code before issue #25 too.

Writes benchmarks/results/train_speed[_quick].json. The selection timings are in
benchmarks/results/selection_speed.json (``python -m benchmarks.selection_speed``).
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
import time
from pathlib import Path

from . import md_speed as M


CAMPAIGNS = {
    # name: (data files, every k-th frame, max frames, valid fraction, model, training)
    "ala2": (["examples/ala2/data/ala2_gfn2_300K.extxyz", "examples/ala2/data/ala2_gfn2_600K.extxyz",
              "examples/ala2/data/ala2_gfn2_1200K.extxyz"], 3, 240, 0.2,
             {"cutoff": 5.0, "n_radial": 8, "n_basis": 8, "hidden": [128, 128]},
             {"batch_size": 8, "lr": 0.03, "lr_final": 0.0003, "dtype": "float32"}),
    "mil53": (["examples/mil53/data/mil53_test_gfn1.extxyz"], 1, 64, 0.1,
              {"cutoff": 5.0, "n_radial": 8, "n_basis": 12, "hidden": [128, 128]},
              {"batch_size": 8, "lr": 0.03, "lr_final": 0.0003, "dtype": "float32",
               "weight_virial": 0.01}),
}


def campaign(name: str, epochs: int, out: str | None) -> dict:
    """Training throughput on a campaign's settings (module docstring)."""
    import torch
    from ubmd.config import ModelConfig, TrainingConfig
    from ubmd.data import GraphDataset, read_structures, species_map_from, split_indices
    from ubmd.training.trainer import train_model

    files, every, n_max, valid_fraction, model, training = CAMPAIGNS[name]
    torch.set_num_threads(1)
    frames = []
    for f in files:
        frames.extend(read_structures(str(M.ROOT / f)))
    frames = frames[::every][:n_max]
    mcfg = ModelConfig(**model)
    data = GraphDataset(frames, mcfg.cutoff, species_map_from(frames))
    split = split_indices(len(data), valid_fraction, 0, 0)
    train, valid = data.subset(split.train), data.subset(split.valid)
    tcfg = TrainingConfig(max_epochs=epochs, patience=10 ** 6, progress=False, seed=0, **training)
    la0 = M.load_average()
    # process CPU time from the first epoch's batches on (not the descriptor statistics before
    # it), and from the second epoch's on (steady state: no first-call warm-up, no compilation):
    # the shuffled batches() calls of any version's training loop, one per epoch
    starts = []
    batches = GraphDataset.batches

    def epoch_marked(self, *args, **kwargs):
        if kwargs.get("shuffle", len(args) > 1 and args[1]):
            starts.append(time.process_time())
        return batches(self, *args, **kwargs)
    GraphDataset.batches = epoch_marked
    try:
        res = train_model(train, valid, mcfg, tcfg)
    finally:
        GraphDataset.batches = batches
    end = time.process_time()
    cpu = end - starts[0]
    steady = len(train) * (epochs - 1) / (end - starts[1]) if epochs > 1 else None
    row = {"case": name, "n_train": len(train), "n_valid": len(valid), "atoms": len(frames[0]),
           "epochs": epochs, "model": model, "training": training, "train_time_s": res.time_s,
           "cpu_time_s": cpu, "structures_per_s_epoch": len(train) * epochs / res.time_s,
           "structures_per_s_epoch_cpu": len(train) * epochs / cpu,
           "structures_per_s_epoch_cpu_steady": steady,
           "history": res.history, "load": [la0, M.load_average()]}
    print(f"{name}: {row['structures_per_s_epoch']:.1f} structures/s per epoch (wall), "
          f"{row['structures_per_s_epoch_cpu']:.1f} (CPU), "
          f"{steady or float('nan'):.1f} (CPU, from the second epoch on); last validation "
          f"{ {k: round(v, 5) for k, v in res.history[-1].items() if 'mae' in k} }", flush=True)
    if out:
        Path(out).write_text(json.dumps(row, indent=1))
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--campaign", choices=list(CAMPAIGNS), default=None,
                   help="a campaign's model and training settings (see above)")
    p.add_argument("--json", default=None, help="with --campaign: write the result here")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--n-structures", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--compile", nargs="+", default=["off", "on"], choices=["off", "on"],
                   help="training.compile settings to time (on: torch.compile'd step)")
    ns = p.parse_args(argv)
    if ns.campaign:
        campaign(ns.campaign, ns.epochs or 4, ns.json)
        return 0

    import torch
    from ubmd.config import ModelConfig, TrainingConfig
    from ubmd.data import GraphDataset, read_structures, species_map_from, split_indices
    from ubmd.model import MLIP
    from ubmd.prediction import to_dtype
    from ubmd.training.loss import StepLoss
    from ubmd.training.trainer import fit_statistics, train_model

    name = "train_speed" + ("_quick" if ns.quick else "") + ("_cuda" if ns.device == "cuda" else "")
    if ns.device == "cuda":
        # ubmd.training has no device option: the GPU path is not implemented in the training code
        print("device cuda: ubmd.training.trainer.train_model runs on the CPU only -> skipped")
        (M.RESULTS / f"{name}.json").write_text(json.dumps(
            {"benchmark": "train_speed", "device": "cuda", "skipped": "train_model has no device option"}))
        return 0
    torch.set_num_threads(ns.threads)
    frames = []
    for f in sorted(glob.glob(str(M.ROOT / "examples" / "ala2" / "data" / "*.extxyz"))):
        frames.extend(read_structures(f))
    n_struct = ns.n_structures or (160 if ns.quick else 800)
    step = max(1, len(frames) // n_struct)
    frames = frames[::step][:n_struct]
    epochs = ns.epochs or (2 if ns.quick else 4)
    mcfg = ModelConfig()
    smap = species_map_from(frames)
    data = GraphDataset(frames, mcfg.cutoff, smap)
    split = split_indices(len(data), 0.1, 0, 0)
    train, valid = data.subset(split.train), data.subset(split.valid)
    print(f"load average {M.load_average()}; {len(train)} train / {len(valid)} valid structures of "
          f"{len(frames[0])} atoms, {epochs} epochs, {ns.threads} torch thread(s)")
    rows = []
    for dtype, comp in [(d, c) for d in ns.dtypes for c in ns.compile]:
        la0 = M.load_average()
        tcfg = TrainingConfig(max_epochs=epochs, dtype=dtype, progress=False, patience=10 ** 6,
                              compile=comp == "on")
        Path("/proc/self/clear_refs").write_text("5")
        res = train_model(train, valid, mcfg, tcfg)
        per_epoch = res.time_s / epochs
        # step-only timing: forward + forces (create_graph) + loss backward + Adam, per batch
        # (after 3 warm-up batches, which include the compilation with compile on)
        torch.manual_seed(0)
        zs = sorted(smap, key=smap.get)
        model = MLIP(zs, mcfg.cutoff, mcfg.n_radial, mcfg.n_basis, list(mcfg.hidden)).to(getattr(torch, dtype))
        fit_statistics(model, train)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
        step_loss = StepLoss(model, tcfg, has_virial=False)
        times = []
        for k, batch in enumerate(train.batches(tcfg.batch_size, shuffle=True, seed=0)):
            batch = to_dtype(batch, getattr(torch, dtype))
            t0 = time.perf_counter()
            loss = step_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
            if k >= 23:
                break
        step_med = statistics.median(times[3:])
        hwm = 0.0
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                hwm = int(line.split()[1]) / 1024.0
        row = {"dtype": dtype, "compile": comp, "n_train": len(train), "n_valid": len(valid), "epochs": epochs,
               "batch_size": tcfg.batch_size, "train_time_s": res.time_s,
               "structures_per_s_epoch": len(train) / per_epoch,
               "structures_per_s_step_only": tcfg.batch_size / step_med,
               "step_median_s": step_med, "max_rss_mib": hwm, "load_before": la0,
               "load_after": M.load_average(),
               "final_errors": {k: v for k, v in res.history[-1].items() if k != "epoch"}}
        rows.append(row)
        print(f"{dtype:8s} compile {comp:3s} {row['structures_per_s_epoch']:7.1f} structures/s (epochs incl. validation)  "
              f"{row['structures_per_s_step_only']:7.1f} structures/s (training step only, batch "
              f"{tcfg.batch_size})  peak RSS {hwm:.0f} MiB  load {row['load_after']}", flush=True)
    sel = M.RESULTS / "selection_speed.json"
    out = {"benchmark": "train_speed", "quick": ns.quick, **M.machine_info(), "threads": ns.threads,
           "model": {"cutoff": mcfg.cutoff, "n_radial": mcfg.n_radial, "n_basis": mcfg.n_basis,
                     "hidden": mcfg.hidden},
           "data": "examples/ala2/data/*.extxyz (alanine dipeptide, 22 atoms, GFN2-xTB)",
           "results": rows,
           "selection_speed_json": str(sel.relative_to(M.ROOT)) if sel.exists() else None}
    (M.RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
