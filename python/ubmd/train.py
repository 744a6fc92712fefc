"""Training: energies + forces (+ virial) loss, Adam with decaying learning rate, early stopping on
the validation error with best-checkpoint restore, seeds, float32/float64, ensembles.

Loss per batch (averaged over structures): w_E (dE)^2 + w_F sum_atoms |dF|^2 + w_W sum |dW|^2,
i.e. SSE(E) + 4 SSE(F) (+ 0.01 SSE(virial)) as in the paper with default weights. Labels are
optional per structure: a structure without an energy (forces, virial) label adds nothing to that
term (masks, see :func:`ubmd.data.collate`) and the sum is still divided by all B structures of the
batch, so over an epoch every existing label weighs the same whatever batch it lands in.

Reference energies: the per-species energy shift (:func:`fit_statistics`, least squares in
float64) is subtracted from the energy labels in float64 before they are cast to the training
dtype, and the model trains with a zero shift; the shift is put back into the model at the end.
So float32 training keeps the accuracy of energy *differences* however large the absolute energies
(-1.43e6 eV cells: float32 ulp 0.125 eV). :attr:`TrainResult.species_shift` keeps the shift in
float64; :meth:`TrainResult.float64_model` restores it exactly (what the workflow saves and
exports). A float32 model (and a float32 export) holds the shift as float32 and sums per-atom
energies in float32, so its *absolute* energies stay quantised (relative error ~1e-7).
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import math
import multiprocessing as mp
import pickle
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from . import keys as K
from .compute import edge_vectors, forces_from_edge_grad, predict, virial_from_edge_grad
from .config import ModelConfig, TrainingConfig
from .data import GraphDataset, no_labels_message
from .model import MLIP

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose float32 or float64")
    return DTYPES[name]


@torch.no_grad()
def fit_statistics(model: MLIP, data: GraphDataset, max_structures: int = 500) -> torch.Tensor:
    """Descriptor standardisation, per-species energy shift (least squares on composition) and
    per-species scale (RMS of the reference forces, or of the energy residual per atom).

    Returns the shift in float64 (the model's ``species_shift`` holds it in the model dtype)."""
    # evenly spread over the data set (files ordered by composition or temperature: every part)
    n = len(data.graphs)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_structures)).round().astype(int)) if n else []
    graphs = [data.graphs[i] for i in pick]
    dtype = model.desc_mean.dtype
    descs = []
    for g in graphs:
        from .compute import edge_vectors
        batch = dict(g)
        batch[K.BATCH] = torch.zeros(len(g[K.POSITIONS]), dtype=torch.long)
        ev = edge_vectors(batch).to(dtype)
        descs.append(model.descriptor(ev, g[K.EDGE_INDEX], g[K.SPECIES], len(g[K.POSITIONS])))
    d = torch.cat(descs)
    model.desc_mean.copy_(d.mean(0))
    std = d.std(0)
    model.desc_inv_std.copy_(1.0 / torch.clamp(std, min=1e-4 * float(std.max()) + 1e-12))
    s = model.n_species
    counts = np.zeros((len(data.graphs), s))
    energies = np.full(len(data.graphs), np.nan)
    for b, g in enumerate(data.graphs):
        counts[b] = np.bincount(g[K.SPECIES].numpy(), minlength=s)
        if K.ENERGY in g:
            energies[b] = float(g[K.ENERGY][0])
    ok = np.isfinite(energies)
    shift = np.zeros(s)
    if ok.sum() > 0:
        present = counts[ok].sum(0) > 0
        sol, *_ = np.linalg.lstsq(counts[ok][:, present], energies[ok], rcond=None)
        shift[present] = sol
    forces = [g[K.FORCES] for g in data.graphs if K.FORCES in g]
    if forces:
        scale = float(torch.cat(forces).double().pow(2).mean().sqrt())
    elif ok.sum() > 1:
        res = (energies[ok] - counts[ok] @ shift) / counts[ok].sum(1)
        scale = float(np.sqrt(np.mean(res ** 2)))
    else:
        scale = 1.0
    scale = scale if scale > 1e-6 else 1.0
    model.species_shift.copy_(torch.tensor(shift, dtype=dtype))
    model.species_scale.fill_(scale)
    return torch.tensor(shift, dtype=torch.float64)


def relative_energies(data: GraphDataset, shift: torch.Tensor) -> GraphDataset:
    """``data`` with energy labels minus the per-species reference energies ``shift`` [S],
    computed in float64 (the labels are float64 after this, whatever the dataset dtype)."""
    shift = shift.to(torch.float64)
    graphs = []
    for g in data.graphs:
        if K.ENERGY in g:
            g = dict(g)
            g[K.ENERGY] = g[K.ENERGY].to(torch.float64) - shift[g[K.SPECIES]].sum().view(1)
        graphs.append(g)
    return data._derived(data.frames, graphs)


@dataclass
class TrainResult:
    model: MLIP
    history: list = field(default_factory=list)
    best_epoch: int = 0
    final_stage_epoch: int | None = None  # first epoch of the energy-weighted final stage
    best_valid: float = math.inf
    time_s: float = 0.0
    species_shift: torch.Tensor | None = None  # per-species reference energies, float64

    def float64_model(self) -> MLIP:
        """The model converted to float64 (in place) with the exact float64 energy shift."""
        model = self.model.to(torch.float64)
        if self.species_shift is not None:
            with torch.no_grad():
                model.species_shift.copy_(self.species_shift)
        return model


def _masked_sse(pred: torch.Tensor, ref: torch.Tensor, mask) -> torch.Tensor:
    """Sum of squared errors over the rows where ``mask`` (first dimension) is True (all rows
    without a mask); masked by multiplication, not by indexing: no data-dependent shape
    (compile-friendly)."""
    diff = pred - ref
    if mask is not None:
        diff = diff * mask.to(diff.dtype).view((-1,) + (1,) * (diff.dim() - 1))
    return (diff ** 2).sum()


def _sse(pred, batch, has_virial: bool) -> tuple:
    """Sums of squared errors of the batch over the labelled structures/atoms: (energies, forces,
    virials); None where no structure of the batch has the label."""
    sse_e = sse_f = sse_w = None
    if K.ENERGY in batch:
        sse_e = _masked_sse(pred[K.ENERGY], batch[K.ENERGY], batch.get(K.ENERGY_MASK))
    if K.FORCES in batch:
        sse_f = _masked_sse(pred[K.FORCES], batch[K.FORCES], batch.get(K.FORCES_MASK))
    if has_virial and K.VIRIAL in batch:
        sse_w = _masked_sse(pred[K.VIRIAL], batch[K.VIRIAL], batch[K.VIRIAL_MASK])
    return sse_e, sse_f, sse_w


def _weighted(sse: tuple, batch, cfg: TrainingConfig, weight_energy: float | None = None):
    """w_E SSE(E) + w_F SSE(F) + w_W SSE(W), per structure of the batch (a float 0.0, not a
    tensor, when the batch has no label with a positive weight)."""
    w_e = cfg.weight_energy if weight_energy is None else weight_energy
    loss = 0.0
    for w, term in zip((w_e, cfg.weight_forces, cfg.weight_virial), sse):
        if term is not None and w > 0:
            loss = loss + w * term
    return loss / batch[K.N_ATOMS].shape[0]


class _StepLoss:
    """The training loss of one batch, eager (``predict``, then :func:`_sse` and :func:`_weighted`) or, with
    ``training.compile``, one ``torch.compile``d function (inductor, dynamic shapes) in which
    forces and virial come from ``torch.func.grad`` of the energy w.r.t. the edge vectors; the
    data-dependent neighbour-slot index is computed outside it. Same loss, same gradients (up to
    rounding); about 1.5x faster per step on CPU after a warm-up of about 30-60 s (first batch
    shapes). If compilation fails (e.g. no C++ compiler), warns once and continues eagerly.
    The loss weights are applied outside the compiled part, so ``weight_energy`` can change
    (the final stage) without a recompilation."""

    def __init__(self, model: MLIP, cfg: TrainingConfig, has_virial: bool):
        self.model, self.cfg, self.has_virial = model, cfg, has_virial
        self.weight_energy = cfg.weight_energy
        self.compiled = None
        if cfg.compile:
            self.compiled = torch.compile(self._loss_from_slots, dynamic=True)

    def _loss_from_slots(self, batch: dict, ev: torch.Tensor, flat: torch.Tensor, n_slots: int):
        ei, sp = batch[K.EDGE_INDEX], batch[K.SPECIES]
        n, nb = sp.shape[0], batch[K.N_ATOMS].shape[0]

        def energy(x):
            e_at = self.model.atomic_energies_from_slots(x, ei, sp, n, flat, n_slots)
            return e_at.sum(), e_at
        grad, e_at = torch.func.grad(energy, has_aux=True)(ev)
        pred = {K.ENERGY: torch.zeros(nb, dtype=e_at.dtype, device=e_at.device).index_add(
            0, batch[K.BATCH], e_at)}
        if K.FORCES in batch:
            pred[K.FORCES] = forces_from_edge_grad(grad, ei, n)
        if self.has_virial and K.VIRIAL in batch:
            pred[K.VIRIAL] = virial_from_edge_grad(grad, ev, batch[K.BATCH][ei[0]], nb)
        return _sse(pred, batch, self.has_virial)

    def __call__(self, batch: dict) -> torch.Tensor:
        if self.compiled is not None:
            flat, n_slots = self.model.descriptor.slot_index(batch[K.EDGE_INDEX][0],
                                                             batch[K.SPECIES].shape[0])
            try:
                sse = self.compiled(batch, edge_vectors(batch).detach(), flat, n_slots)
                return _weighted(sse, batch, self.cfg, self.weight_energy)
            except Exception as exc:  # compiler missing or unsupported: same loss, eagerly
                warnings.warn(f"training.compile: torch.compile failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); training "
                              "without compilation", RuntimeWarning)
                self.compiled = None
        pred = predict(self.model, batch, forces=K.FORCES in batch,
                       virial=self.has_virial and K.VIRIAL in batch, create_graph=True)
        return _weighted(_sse(pred, batch, self.has_virial), batch, self.cfg, self.weight_energy)


def model_dtype(model) -> torch.dtype:
    for t in list(model.parameters()) + list(model.buffers()):
        if torch.is_floating_point(t):
            return t.dtype
    return torch.float64


def _rows(x: torch.Tensor, batch: dict, mask_key: str) -> torch.Tensor:
    """The rows of ``x`` whose structure/atom has the label (all rows without a mask)."""
    mask = batch.get(mask_key)
    return (x if mask is None else x[mask]).detach()


def evaluate_errors(model, data: GraphDataset, batch_size: int = 32) -> dict:
    """RMSE/MAE of energies (eV/atom), forces (eV/Å) and stress (eV/Å^3) on a dataset, each over
    the structures (atoms) that have that label only."""
    de, df, dw = [], [], []
    model.eval()
    for batch in data.batches(batch_size):
        batch = _to_dtype(batch, model_dtype(model))
        pred = predict(model, batch, forces=K.FORCES in batch, virial=K.VIRIAL in batch)
        n = batch[K.N_ATOMS].to(pred[K.ENERGY].dtype)
        if K.ENERGY in batch:
            de.append(_rows((pred[K.ENERGY] - batch[K.ENERGY]) / n, batch, K.ENERGY_MASK))
        if K.FORCES in batch:
            df.append(_rows(pred[K.FORCES] - batch[K.FORCES], batch, K.FORCES_MASK))
        if K.VIRIAL in batch:
            vol = torch.abs(torch.linalg.det(batch[K.CELL])).view(-1, 1, 1)
            dw.append(_rows((pred[K.VIRIAL] - batch[K.VIRIAL]) / vol, batch, K.VIRIAL_MASK))
    out = {}
    e = torch.cat(de).double() if de else torch.zeros(0)
    if len(e):
        out.update(energy_rmse=float(e.pow(2).mean().sqrt()), energy_mae=float(e.abs().mean()))
    f = torch.cat(df).double() if df else torch.zeros(0)
    if len(f):
        out.update(forces_rmse=float(f.pow(2).mean().sqrt()), forces_mae=float(f.abs().mean()),
                   forces_max=float(f.abs().max()))
    w = torch.cat(dw).double() if dw else torch.zeros(0)
    if len(w):
        out.update(stress_rmse=float(w.pow(2).mean().sqrt()))
    return out


def _to_dtype(batch, dtype):
    return {k: (v.to(dtype) if torch.is_floating_point(v) else v) for k, v in batch.items()}


def _score(errors: dict) -> float:
    """Early-stopping score: energy MAE (eV/atom) + force MAE (eV/Å)."""
    return errors.get("energy_mae", 0.0) + errors.get("forces_mae", 0.0)


def _optimizer(model: MLIP, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """AMSGrad Adam; with ``weight_decay`` > 0, decoupled decay on the readout weight matrices only
    (not on biases or the descriptor's radial coefficients)."""
    if cfg.weight_decay <= 0:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, amsgrad=True)
    decay = [layer.weight for layer in model.layers]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, amsgrad=True)


class _Ema:
    """Exponential moving average of the trainable parameters, theta_ema <- d theta_ema +
    (1 - d) theta, with the usual warm-up d_t = min(d, (1 + t) / (10 + t))."""

    def __init__(self, model: MLIP, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.steps = 0
        self.shadow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: MLIP) -> None:
        self.steps += 1
        d = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        for s, p in zip(self.shadow, model.parameters()):
            s.mul_(d).add_(p.detach(), alpha=1.0 - d)

    @torch.no_grad()
    def swap(self, model: MLIP) -> None:
        """Exchange the model's parameters with the averaged ones (call twice to restore)."""
        for s, p in zip(self.shadow, model.parameters()):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)


def _new_model(train: GraphDataset, model_cfg: ModelConfig, seed: int, dtype: torch.dtype) -> MLIP:
    """An untrained model for the species of ``train`` (model species ordered as in its map)."""
    zs = sorted(train.species_map, key=lambda z: train.species_map[z])
    return MLIP(zs, model_cfg.cutoff, model_cfg.n_radial, model_cfg.n_basis,
                list(model_cfg.hidden), seed=seed).to(dtype)


def train_model(train: GraphDataset, valid: GraphDataset, model_cfg: ModelConfig,
                cfg: TrainingConfig, seed: int | None = None, desc: str = "train",
                init_state: dict | None = None) -> TrainResult:
    """Train one model from scratch (or, with ``init_state``, continue from a state dict of a
    model with the same architecture and species: a warm start, which keeps that model's
    descriptor and energy statistics); returns the best-on-validation model."""
    seed = cfg.seed if seed is None else seed
    if not 0.0 <= cfg.final_fraction < 1.0:
        raise ValueError(f"training.final_fraction must be in [0, 1), got {cfg.final_fraction}")
    torch.manual_seed(seed)
    if cfg.num_threads is not None:
        torch.set_num_threads(int(cfg.num_threads))
    dtype = torch_dtype(cfg.dtype)
    if not train.has_labels():
        raise ValueError("the training split has no energy or forces label: nothing to train on"
                         + (f" ({no_labels_message(train.frames, train.label_keys)})"
                            if train.frames else ""))
    model = _new_model(train, model_cfg, seed, dtype)
    if init_state is not None:
        model.load_state_dict(init_state)
        shift = init_state.get("species_shift", model.species_shift).detach().double().clone()
    else:
        shift = fit_statistics(model, train)
    # train on energies relative to the float64 reference energies, with a zero model shift
    train, valid = relative_energies(train, shift), relative_energies(valid, shift)
    with torch.no_grad():
        model.species_shift.zero_()
    has_virial = any(K.VIRIAL in g for g in train.graphs)
    opt = _optimizer(model, cfg)
    step_loss = _StepLoss(model, cfg, has_virial)
    ema = _Ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    def set_lr(progress: float) -> float:
        """Exponential decay lr -> lr_final over the run; progress in [0, 1] is the larger of
        the epoch fraction and the wall-time fraction (so a time budget still anneals)."""
        lr = cfg.lr * (cfg.lr_final / cfg.lr) ** min(1.0, max(0.0, progress))
        for group in opt.param_groups:
            group["lr"] = lr
        return lr
    result = TrainResult(model=model)
    best_state = copy.deepcopy(model.state_dict())
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.max_epochs), desc=desc, disable=not cfg.progress, leave=False)
    since_best = 0
    lr_now = cfg.lr
    final_stage = False

    def start_final_stage(epoch: int) -> None:
        """Energy-weighted final stage: from here on w_E = final_weight_energy, and the best
        checkpoint is the best of this stage (not of the force-dominated stage before)."""
        nonlocal final_stage, since_best
        final_stage, since_best = True, 0
        step_loss.weight_energy = cfg.final_weight_energy
        result.best_valid = math.inf
        result.final_stage_epoch = epoch

    for epoch in bar:
        frac = epoch / max(1, cfg.max_epochs)
        if cfg.max_time_s:
            frac = max(frac, (time.perf_counter() - t0) / cfg.max_time_s)
        lr_now = set_lr(frac)
        if cfg.final_fraction > 0 and not final_stage and frac >= 1.0 - cfg.final_fraction:
            start_final_stage(epoch)
        model.train()
        tot, nb = 0.0, 0
        for batch in train.batches(cfg.batch_size, shuffle=True, seed=seed * 100003 + epoch):
            batch = _to_dtype(batch, dtype)
            loss = step_loss(batch)
            if not torch.is_tensor(loss):  # no label in this batch (all its frames unlabelled)
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(model)
            tot += float(loss.detach())
            nb += 1
        if epoch % cfg.valid_every == 0 or epoch == cfg.max_epochs - 1:
            if ema is not None:
                ema.swap(model)  # validate (and keep) the averaged weights
            errs = evaluate_errors(model, valid if len(valid) else train)
            score = _score(errs)
            rec = {"epoch": epoch, "loss": tot / max(nb, 1), "lr": lr_now, **errs}
            result.history.append(rec)
            if score < result.best_valid:
                result.best_valid, result.best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
                since_best = 0
            else:
                since_best += cfg.valid_every
            if ema is not None:
                ema.swap(model)
            bar.set_postfix(loss=f"{rec['loss']:.3g}",
                            E=f"{1000 * errs.get('energy_rmse', 0):.2f}meV/at",
                            F=f"{errs.get('forces_rmse', 0):.3f}eV/A")
            if since_best >= cfg.patience:
                if cfg.final_fraction > 0 and not final_stage:
                    start_final_stage(epoch + 1)  # stopped early: still end with the final stage
                else:
                    break
        if cfg.max_time_s is not None and time.perf_counter() - t0 > cfg.max_time_s:
            break
    bar.close()
    model.load_state_dict(best_state)
    with torch.no_grad():
        model.species_shift.copy_(shift)
    model.eval()
    result.species_shift = shift
    result.time_s = time.perf_counter() - t0
    return result


def _train_member_job(job: tuple) -> dict:
    """Worker of :func:`train_ensemble` (a separate process): one member, returned as plain data."""
    data, model_cfg, cfg, seed, desc, init_state = job
    train, valid = pickle.loads(data)
    res = train_model(train, valid, model_cfg, cfg, seed=seed, desc=desc, init_state=init_state)
    return {"state": res.model.state_dict(), "history": res.history, "best_epoch": res.best_epoch,
            "final_stage_epoch": res.final_stage_epoch, "best_valid": res.best_valid,
            "time_s": res.time_s, "species_shift": res.species_shift}


def train_ensemble(train: GraphDataset, valid: GraphDataset, model_cfg: ModelConfig,
                   cfg: TrainingConfig, init_states: list | None = None) -> list[TrainResult]:
    """M models with seeds seed, seed+1, ... (member m warm-started from ``init_states[m]``).

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
    if n_workers == 1:
        return [train_model(train, valid, model_cfg, cfg, seed=cfg.seed + m, desc=descs[m],
                            init_state=inits[m]) for m in range(cfg.n_models)]
    quiet = copy.deepcopy(cfg)
    quiet.progress = False  # one bar here (members done) instead of interleaved worker bars
    # graphs only (ASE frames and calculators stay here), pickled to plain bytes: the default
    # multiprocessing reduction would share every tensor through its own file descriptor
    data = pickle.dumps((train.without_frames(), valid.without_frames()))
    jobs = [(data, model_cfg, quiet, cfg.seed + m, descs[m], inits[m])
            for m in range(cfg.n_models)]
    outs: list = [None] * cfg.n_models
    with cf.ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn")) as pool, \
            tqdm(total=cfg.n_models, desc=f"train ensemble ({n_workers} processes)",
                 disable=not cfg.progress, leave=False) as bar:
        futures = {pool.submit(_train_member_job, job): m for m, job in enumerate(jobs)}
        for fut in cf.as_completed(futures):
            outs[futures[fut]] = fut.result()
            bar.update(1)
    results = []
    for m, o in enumerate(outs):
        model = _new_model(train, model_cfg, cfg.seed + m, torch_dtype(cfg.dtype))
        model.load_state_dict(o["state"])
        model.eval()
        results.append(TrainResult(model=model, history=o["history"], best_epoch=o["best_epoch"],
                                   final_stage_epoch=o["final_stage_epoch"],
                                   best_valid=o["best_valid"], time_s=o["time_s"],
                                   species_shift=o["species_shift"]))
    return results
