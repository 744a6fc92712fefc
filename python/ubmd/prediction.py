"""Predictions of a model on a batch: energies, forces, virial and stress from per-atom energies on
edge vectors, and their errors against the labels.

All derivatives go through the edge vectors ``r_e = r_j - r_i + S @ cell``:
F_n = sum_{e: i_e = n} dE/dr_e - sum_{e: j_e = n} dE/dr_e, virial W = -sum_e r_e (x) dE/dr_e (eV),
stress = -W / V (eV/Å^3, ASE sign). This is exactly what the LAMMPS pair style does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import keys as K
from .data import GraphDataset


def edge_vectors(batch: dict[str, Tensor]) -> Tensor:
    """Edge vectors [E, 3] (Å) of a batch, including periodic image shifts."""
    pos = batch[K.POSITIONS]
    i, j = batch[K.EDGE_INDEX]
    cell = batch[K.CELL][batch[K.BATCH][i]]  # [E, 3, 3]
    shift = torch.einsum("ea,eab->eb", batch[K.SHIFTS].to(pos.dtype), cell)
    return pos[j] - pos[i] + shift


def forces_from_edge_grad(grad: Tensor, edge_index: Tensor, n_atoms: int) -> Tensor:
    """-dX/dR [n_atoms, 3] from dX/dr_e [E, 3]."""
    f = torch.zeros(n_atoms, 3, dtype=grad.dtype, device=grad.device)
    f = f.index_add(0, edge_index[0], grad)
    return f.index_add(0, edge_index[1], -grad)


def virial_from_edge_grad(grad: Tensor, edge_vec: Tensor, edge_batch: Tensor, n_struct: int) -> Tensor:
    """W_b = -sum_{e in b} r_e (x) dX/dr_e  [n_struct, 3, 3]."""
    w = -edge_vec.unsqueeze(-1) * grad.unsqueeze(-2)
    out = torch.zeros(n_struct, 3, 3, dtype=grad.dtype, device=grad.device)
    return out.index_add(0, edge_batch, w)


def cell_volumes(batch: dict[str, Tensor]) -> Tensor:
    return torch.abs(torch.linalg.det(batch[K.CELL]))


def predict(model, batch: dict[str, Tensor], forces: bool = True, virial: bool = True,
            create_graph: bool = False) -> dict[str, Tensor]:
    """Energies [B], per-atom energies [N], forces [N,3], virial [B,3,3] and stress [B,3,3].

    A model with ``energies_and_gradient`` (an MLIP, a feature model, an exported model) gives
    the edge gradient in closed form: with ``create_graph`` the results are differentiable w.r.t.
    the parameters (one backward pass for a force loss), without it no graph is recorded. Other
    models go through autograd w.r.t. the edge vectors."""
    ei = batch[K.EDGE_INDEX]
    n = batch[K.POSITIONS].shape[0]
    nb = batch[K.N_ATOMS].shape[0]
    closed_form = getattr(model, "energies_and_gradient", None)
    grad = None
    if (forces or virial) and closed_form is not None:
        ev = edge_vectors(batch).detach()
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            e_at, grad = closed_form(ev, ei, batch[K.SPECIES], n)
    else:
        ev = edge_vectors(batch).detach().requires_grad_(forces or virial)
        e_at = model(ev, ei, batch[K.SPECIES], n)
    energy = torch.zeros(nb, dtype=e_at.dtype, device=e_at.device).index_add(0, batch[K.BATCH], e_at)
    out = {K.ENERGY: energy, K.ATOMIC_ENERGIES: e_at}
    if forces or virial:
        if grad is None:
            (grad,) = torch.autograd.grad(energy.sum(), ev, create_graph=create_graph)
        if forces:
            out[K.FORCES] = forces_from_edge_grad(grad, ei, n)
        if virial:
            w = virial_from_edge_grad(grad, ev, batch[K.BATCH][ei[0]], nb)
            out[K.VIRIAL] = w
            vol = cell_volumes(batch)
            out[K.STRESS] = -w / torch.where(vol > 1e-12, vol, torch.ones_like(vol)).view(-1, 1, 1)
    return out


def model_device(model) -> torch.device:
    """The device of a module's first parameter or buffer (cpu if none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def model_dtype(model) -> torch.dtype:
    """The dtype of a module's first floating-point parameter or buffer (float64 if none)."""
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
    dtype, device = model_dtype(model), model_device(model)
    for batch in data.batches(batch_size):
        batch = to_dtype(batch, dtype, device)
        pred = predict(model, batch, forces=K.FORCES in batch, virial=K.VIRIAL in batch)
        n = batch[K.N_ATOMS].to(pred[K.ENERGY].dtype)
        if K.ENERGY in batch:
            de.append(_rows((pred[K.ENERGY] - batch[K.ENERGY]) / n, batch, K.ENERGY_MASK).cpu())
        if K.FORCES in batch:
            df.append(_rows(pred[K.FORCES] - batch[K.FORCES], batch, K.FORCES_MASK).cpu())
        if K.VIRIAL in batch:
            vol = torch.abs(torch.linalg.det(batch[K.CELL])).view(-1, 1, 1)
            dw.append(_rows((pred[K.VIRIAL] - batch[K.VIRIAL]) / vol, batch, K.VIRIAL_MASK).cpu())
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


def to_dtype(batch: dict, dtype: torch.dtype, device=None) -> dict:
    """The batch with its floating-point tensors cast to ``dtype`` (and everything moved to
    ``device`` when given)."""
    return {k: (v.to(device=device, dtype=dtype) if torch.is_floating_point(v) else v.to(device))
            for k, v in batch.items()}
