"""Energies, forces, virial and stress of a batch from per-atom energies on edge vectors.

All derivatives go through the edge vectors ``r_e = r_j - r_i + S @ cell``:
F_n = sum_{e: i_e = n} dE/dr_e - sum_{e: j_e = n} dE/dr_e, virial W = -sum_e r_e (x) dE/dr_e (eV),
stress = -W / V (eV/Å^3, ASE sign). This is exactly what the LAMMPS pair style does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import keys as K


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
    """Energies [B], per-atom energies [N], forces [N,3], virial [B,3,3] and stress [B,3,3]."""
    ev = edge_vectors(batch).detach().requires_grad_(forces or virial)
    ei = batch[K.EDGE_INDEX]
    n = batch[K.POSITIONS].shape[0]
    nb = batch[K.N_ATOMS].shape[0]
    e_at = model(ev, ei, batch[K.SPECIES], n)
    energy = torch.zeros(nb, dtype=e_at.dtype, device=e_at.device).index_add(0, batch[K.BATCH], e_at)
    out = {K.ENERGY: energy, K.ATOMIC_ENERGIES: e_at}
    if forces or virial:
        (grad,) = torch.autograd.grad(energy.sum(), ev, create_graph=create_graph)
        if forces:
            out[K.FORCES] = forces_from_edge_grad(grad, ei, n)
        if virial:
            w = virial_from_edge_grad(grad, ev, batch[K.BATCH][ei[0]], nb)
            out[K.VIRIAL] = w
            vol = cell_volumes(batch)
            out[K.STRESS] = -w / torch.where(vol > 1e-12, vol, torch.ones_like(vol)).view(-1, 1, 1)
    return out
