"""The training loss: w_E SSE(E) + w_F SSE(F) + w_W SSE(virial) per structure, over the labels each
structure has (masks), eager or through ``torch.compile``."""

from __future__ import annotations

import warnings

import torch

from .. import keys as K
from ..config import TrainingConfig
from ..model import MLIP
from ..prediction import predict


def masked_sse(pred: torch.Tensor, ref: torch.Tensor, mask) -> torch.Tensor:
    """Sum of squared errors over the rows where ``mask`` (first dimension) is True (all rows
    without a mask); masked by multiplication, not by indexing: no data-dependent shape
    (compile-friendly)."""
    diff = pred - ref
    if mask is not None:
        diff = diff * mask.to(diff.dtype).view((-1,) + (1,) * (diff.dim() - 1))
    return (diff ** 2).sum()


def label_sse(pred, batch, has_virial: bool) -> tuple:
    """Sums of squared errors of the batch over the labelled structures/atoms: (energies, forces,
    virials); None where no structure of the batch has the label."""
    sse_e = sse_f = sse_w = None
    if K.ENERGY in batch:
        sse_e = masked_sse(pred[K.ENERGY], batch[K.ENERGY], batch.get(K.ENERGY_MASK))
    if K.FORCES in batch:
        sse_f = masked_sse(pred[K.FORCES], batch[K.FORCES], batch.get(K.FORCES_MASK))
    if has_virial and K.VIRIAL in batch:
        sse_w = masked_sse(pred[K.VIRIAL], batch[K.VIRIAL], batch[K.VIRIAL_MASK])
    return sse_e, sse_f, sse_w


def weighted_loss(sse: tuple, batch, cfg: TrainingConfig, weight_energy: float | None = None):
    """w_E SSE(E) + w_F SSE(F) + w_W SSE(W), per structure of the batch (a float 0.0, not a
    tensor, when the batch has no label with a positive weight)."""
    w_e = cfg.weight_energy if weight_energy is None else weight_energy
    loss = 0.0
    for w, term in zip((w_e, cfg.weight_forces, cfg.weight_virial), sse):
        if term is not None and w > 0:
            loss = loss + w * term
    return loss / batch[K.N_ATOMS].shape[0]


class StepLoss:
    """The training loss of one batch (``predict``, :func:`label_sse`, :func:`weighted_loss`),
    eager or, with ``training.compile``, through one ``torch.compile``d function (inductor,
    dynamic shapes) of the same code. Forces and virial come from the model's closed-form edge
    gradient (``MLIP.energies_and_gradient``: one backward pass for the force loss instead of a
    double backward). On one CPU thread compilation does not pay at the campaign sizes
    (``benchmarks.train_speed``, docs/performance.md): alanine dipeptide batches 1.14x faster per
    step after 80 s of compilation, MIL-53 batches equal, so it is off by default. If
    compilation fails (e.g. no C++ compiler), warns once and continues eagerly. The loss weights
    are applied outside the compiled part, so ``weight_energy`` can change (the final stage)
    without a recompilation."""

    def __init__(self, model: MLIP, cfg: TrainingConfig, has_virial: bool):
        self.model, self.cfg, self.has_virial = model, cfg, has_virial
        self.weight_energy = cfg.weight_energy
        self.compiled = torch.compile(self._sse, dynamic=True) if cfg.compile else None

    def _sse(self, batch: dict) -> tuple:
        pred = predict(self.model, batch, forces=K.FORCES in batch,
                       virial=self.has_virial and K.VIRIAL in batch, create_graph=True)
        return label_sse(pred, batch, self.has_virial)

    def __call__(self, batch: dict) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return weighted_loss(self.compiled(batch), batch, self.cfg, self.weight_energy)
            except Exception as exc:  # compiler missing or unsupported: same loss, eagerly
                warnings.warn(f"training.compile: torch.compile failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); training "
                              "without compilation", RuntimeWarning)
                self.compiled = None
        return weighted_loss(self._sse(batch), batch, self.cfg, self.weight_energy)
