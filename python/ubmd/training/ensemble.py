"""An ensemble of M members (seeds seed, seed+1, ...), trained one after another or in worker
processes at once (:mod:`ubmd.executors`); same results either way."""

from __future__ import annotations

import copy
import functools
import pickle

from tqdm.auto import tqdm

from ..config import ModelConfig, TrainingConfig
from ..data import GraphDataset
from ..executors import JobFailure, LocalExecutor
from ..model import new_model
from .trainer import TrainResult, torch_dtype, train_model


def _train_member_job(job: tuple) -> dict:
    """Worker of :func:`train_ensemble` (a separate process): one member, returned as plain data."""
    data, model_cfg, cfg, seed, desc, init_state, on_epoch = job
    train, valid = pickle.loads(data)
    res = train_model(train, valid, model_cfg, cfg, seed=seed, desc=desc, init_state=init_state,
                      on_epoch=on_epoch)
    return {"state": res.model.state_dict(), "history": res.history, "best_epoch": res.best_epoch,
            "final_stage_epoch": res.final_stage_epoch, "best_valid": res.best_valid,
            "time_s": res.time_s, "species_shift": res.species_shift}


def train_ensemble(train: GraphDataset, valid: GraphDataset, model_cfg: ModelConfig,
                   cfg: TrainingConfig, init_states: list | None = None,
                   on_epoch=None) -> list[TrainResult]:
    """M models with seeds seed, seed+1, ... (member m warm-started from ``init_states[m]``).

    ``on_epoch(member, epoch, n_epochs, record, done)``: progress of each member (picklable when
    members train in worker processes, e.g. :class:`ubmd.progress.EpochHeartbeat`).

    With ``cfg.n_workers`` > 1 the members train in that many processes at once (each with
    ``cfg.num_threads`` threads); the results are identical to training them one after another
    (same seeds, same data order), only the wall time differs."""
    if init_states is not None and len(init_states) != cfg.n_models:
        raise ValueError(f"warm start needs {cfg.n_models} member states, got {len(init_states)}")
    if cfg.n_workers < 1:
        raise ValueError(f"training.n_workers must be >= 1, got {cfg.n_workers}")
    descs = [f"train {m + 1}/{cfg.n_models}" if cfg.n_models > 1 else "train"
             for m in range(cfg.n_models)]
    inits = [None if init_states is None else init_states[m] for m in range(cfg.n_models)]
    n_workers = min(cfg.n_workers, cfg.n_models)
    hooks = [None if on_epoch is None else functools.partial(on_epoch, m)
             for m in range(cfg.n_models)]
    if n_workers == 1:
        return [train_model(train, valid, model_cfg, cfg, seed=cfg.seed + m, desc=descs[m],
                            init_state=inits[m], on_epoch=hooks[m]) for m in range(cfg.n_models)]
    quiet = copy.deepcopy(cfg)
    quiet.progress = False  # one bar here (members done) instead of interleaved worker bars
    # graphs only (ASE frames and calculators stay here), pickled to plain bytes: the default
    # multiprocessing reduction would share every tensor through its own file descriptor
    data = pickle.dumps((train.without_frames(), valid.without_frames()))
    jobs = [(data, model_cfg, quiet, cfg.seed + m, descs[m], inits[m], hooks[m])
            for m in range(cfg.n_models)]
    outs: list = [None] * cfg.n_models
    with LocalExecutor(n_workers) as pool, \
            tqdm(total=cfg.n_models, desc=f"train ensemble ({n_workers} processes)",
                 disable=not cfg.progress, leave=False) as bar:
        for m, out in pool.map_unordered(_train_member_job, jobs):
            if isinstance(out, JobFailure) and out.exception is not None:
                raise out.exception  # the member's own error, with its type (input errors)
            if isinstance(out, JobFailure):
                raise RuntimeError(f"training ensemble member {m + 1}/{cfg.n_models} failed in "
                                   f"its worker process: {out.reason}")
            outs[m] = out
            bar.update(1)
    results = []
    for m, o in enumerate(outs):
        model = new_model(train.species_map, model_cfg, cfg.seed + m, torch_dtype(cfg.dtype))
        model.load_state_dict(o["state"])
        model.eval()
        results.append(TrainResult(model=model, history=o["history"], best_epoch=o["best_epoch"],
                                   final_stage_epoch=o["final_stage_epoch"],
                                   best_valid=o["best_valid"], time_s=o["time_s"],
                                   species_shift=o["species_shift"]))
    return results
