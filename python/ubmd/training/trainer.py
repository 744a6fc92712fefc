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

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import keys as K
from ..config import ModelConfig, TrainingConfig, check_device
from ..data import GraphDataset, no_labels_message
from ..model import MLIP, new_model
from ..prediction import edge_vectors, evaluate_errors, to_dtype
from .loss import StepLoss

DTYPES = {name: getattr(torch, name) for name in K.DTYPES}  # config name -> torch dtype


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
    return data.derived(data.frames, graphs)


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


def _score(errors: dict) -> float:
    """Early-stopping score: energy MAE (eV/atom) + force MAE (eV/Å)."""
    return errors.get("energy_mae", 0.0) + errors.get("forces_mae", 0.0)


def _optimizer(model: MLIP, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """AMSGrad Adam; with ``weight_decay`` > 0, decoupled decay on the readout weight matrices only
    (not on biases or the descriptor's radial coefficients)."""
    # foreach: one multi-tensor kernel per update step instead of one per parameter (the same
    # arithmetic; the per-parameter loop was ~5 % of a small model's training step)
    if cfg.weight_decay <= 0:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, amsgrad=True, foreach=True)
    decay = [layer.weight for layer in model.layers]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, amsgrad=True,
                             foreach=True)


class Ema:
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


def train_model(train: GraphDataset, valid: GraphDataset, model_cfg: ModelConfig,
                cfg: TrainingConfig, seed: int | None = None, desc: str = "train",
                init_state: dict | None = None, on_epoch=None) -> TrainResult:
    """Train one model from scratch (or, with ``init_state``, continue from a state dict of a
    model with the same architecture and species: a warm start, which keeps that model's
    descriptor and energy statistics); returns the best-on-validation model.

    ``on_epoch(epoch, n_epochs, record, done)``: called after every epoch (``record``: the last
    validation record, with ``energy_rmse`` eV/atom and ``forces_rmse`` eV/Å) and once at the
    end with ``done=True``; for progress displays (:class:`ubmd.progress.EpochHeartbeat`)."""
    seed = cfg.seed if seed is None else seed
    if not 0.0 <= cfg.final_fraction < 1.0:
        raise ValueError(f"training.final_fraction must be in [0, 1), got {cfg.final_fraction}")
    check_device(cfg.device, "training.device")
    torch.manual_seed(seed)
    if cfg.num_threads is not None:
        torch.set_num_threads(int(cfg.num_threads))
    dtype = torch_dtype(cfg.dtype)
    device = torch.device(cfg.device)
    if not train.has_labels():
        raise ValueError("the training split has no energy or forces label: nothing to train on"
                         + (f" ({no_labels_message(train.frames, train.label_keys)})"
                            if train.frames else ""))
    model = new_model(train.species_map, model_cfg, seed, dtype)
    if init_state is not None:
        model.load_state_dict(init_state)
        shift = init_state.get("species_shift", model.species_shift).detach().double().clone()
    else:
        shift = fit_statistics(model, train)
    # train on energies relative to the float64 reference energies, with a zero model shift
    train, valid = relative_energies(train, shift), relative_energies(valid, shift)
    with torch.no_grad():
        model.species_shift.zero_()
    model.to(device)
    has_virial = any(K.VIRIAL in g for g in train.graphs)
    opt = _optimizer(model, cfg)
    step_loss = StepLoss(model, cfg, has_virial)
    ema = Ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None

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
            batch = to_dtype(batch, dtype, device)
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
            if on_epoch is not None:
                on_epoch(epoch, cfg.max_epochs, rec, False)
            if since_best >= cfg.patience:
                if cfg.final_fraction > 0 and not final_stage:
                    start_final_stage(epoch + 1)  # stopped early: still end with the final stage
                else:
                    break
        if cfg.max_time_s is not None and time.perf_counter() - t0 > cfg.max_time_s:
            break
    bar.close()
    if on_epoch is not None:
        on_epoch(epoch, cfg.max_epochs, result.history[-1] if result.history else None, True)
    model.load_state_dict(best_state)
    model.cpu()
    with torch.no_grad():
        model.species_shift.copy_(shift)
    model.eval()
    result.species_shift = shift
    result.time_s = time.perf_counter() - t0
    return result


