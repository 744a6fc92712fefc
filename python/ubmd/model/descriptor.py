"""Gaussian-moment descriptor of atomic neighbourhoods: rotation and permutation invariant, strictly
local (one cutoff), evaluated on edge vectors ``r_ij = r_j - r_i`` (Å).

Species-pair-mixed Gaussian radial functions R_n(r) (n < n_radial) times a cosine cutoff; moments
A_n^(k) = sum_j R_n(r_ij) u_ij^(x k) for k = 0..3 (u = r/|r|, symmetric storage); invariants:
A0_n, A1_n.A1_m, A2_n:A2_m, A3_n:A3_m, tr(A2_a A2_b A2_c), A1_a.A2_b.A1_c.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor, nn

PAIR_GEMM_MAX_SPECIES = 2  # radial mixing through one GEMM to all pair channels up to this


def _sym_indices(n: int, order: int) -> Tensor:
    """All index tuples a <= b (<= c) of ``order`` 2 or 3 over range(n), as a [M, order] tensor."""
    out = []
    if order == 2:
        for a in range(n):
            for b in range(a, n):
                out.append([a, b])
    else:
        for a in range(n):
            for b in range(a, n):
                for c in range(b, n):
                    out.append([a, b, c])
    return torch.tensor(out, dtype=torch.long)


class GaussianMoments(nn.Module):
    """Gaussian-moment descriptor of atomic neighbourhoods (rotation/permutation invariant)."""

    def __init__(self, n_species: int, cutoff: float, n_radial: int = 8, n_basis: int = 12,
                 r_min: float = 0.5, pair_gemm: bool | None = None):
        """``pair_gemm``: how the radial basis is mixed per species pair (same numbers either
        way): one GEMM to all pair channels, then the pair's picked (True), or each edge's own
        pair weights (False); None picks the faster, the GEMM up to
        ``PAIR_GEMM_MAX_SPECIES`` species."""
        super().__init__()
        self.n_species = n_species
        self.cutoff = float(cutoff)
        self.n_radial = n_radial
        self.n_basis = n_basis
        self.pair_gemm = bool(n_species <= PAIR_GEMM_MAX_SPECIES if pair_gemm is None else pair_gemm)
        self.register_buffer("centres", torch.linspace(r_min, cutoff, n_basis))
        self.width = float((cutoff - r_min) / (n_basis - 1))
        g = torch.Generator().manual_seed(1234)
        w = torch.randn(n_species * n_species, n_basis, n_radial, generator=g) / math.sqrt(n_basis)
        self.radial_weights = nn.Parameter(w)
        # multiplicities of symmetric components: rank-2 [xx,yy,zz,xy,xz,yz], rank-3 10 comps
        self.register_buffer("mult2", torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 2.0]))
        self.register_buffer(
            "mult3", torch.tensor([1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 6.0]))
        self.register_buffer("pairs", _sym_indices(n_radial, 2))
        self.register_buffer("triples", _sym_indices(n_radial, 3))
        # flat indices of the a <= b (<= c) entries of [nr, nr] ([nr, nr, nr]) products
        # (non-persistent: derived, state dicts unchanged)
        p, t = self.pairs, self.triples
        self.register_buffer("pair_flat", p[:, 0] * n_radial + p[:, 1], persistent=False)
        self.register_buffer("triple_flat", (t[:, 0] * n_radial + t[:, 1]) * n_radial + t[:, 2],
                             persistent=False)
        self.dim = (n_radial + 3 * self.pairs.shape[0] + self.triples.shape[0]
                    + n_radial * self.pairs.shape[0])

    def forward(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int) -> Tensor:
        """Descriptor [n_centres, dim] of centres 0..n_centres-1 from the edges (i, j)."""
        flat, n_slots = self.slot_index(edge_index[0], n_centres)
        return self.from_slots(edge_vec, edge_index, species, n_centres, flat, n_slots)

    def slot_index(self, i: Tensor, n_centres: int) -> Tuple[Tensor, int]:
        """Padded neighbour-slot index of every edge: ``flat[e] = i_e * n_slots + k`` with k the
        rank of e among the edges of its centre, and ``n_slots`` the largest neighbour count.
        Depends only on the graph (not on positions), so it can be computed once per batch outside
        a compiled region (its output shape depends on data)."""
        counts = torch.bincount(i, minlength=n_centres)
        n_slots = int(counts.max()) if i.numel() > 0 else 1
        starts = torch.cumsum(counts, 0) - counts
        if i.numel() < 2 or bool((i[1:] >= i[:-1]).all()):
            slot = torch.arange(i.numel(), device=i.device) - starts[i]  # already grouped
        else:
            order = torch.argsort(i, stable=True)
            slot = torch.empty_like(i)
            slot[order] = torch.arange(i.numel(), device=i.device) - starts[i[order]]
        return i * n_slots + slot, n_slots

    def from_slots(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
                   flat: Tensor, n_slots: int) -> Tensor:
        """:meth:`forward` with the slot index of :meth:`slot_index` given (no data-dependent
        shapes inside: what ``training.compile`` traces)."""
        return self.invariants(self.moments(edge_vec, edge_index, species, n_centres, flat, n_slots))

    def moments(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
                flat: Tensor, n_slots: int) -> Tensor:
        """The edge-level half of the descriptor: the moments A [n_centres, n_radial, 20]
        (k = 0..3 in symmetric storage: 1, xyz, 6 rank-2, 10 rank-3 components) of every centre
        (slot index of :meth:`slot_index`)."""
        i = edge_index[0]
        j = edge_index[1]
        nr = self.n_radial
        r = torch.sqrt((edge_vec * edge_vec).sum(-1) + 1e-30)
        u = edge_vec / r.unsqueeze(-1)
        fcut = 0.5 * (torch.cos(math.pi * r / self.cutoff) + 1.0)
        fcut = torch.where(r < self.cutoff, fcut, torch.zeros_like(fcut))
        basis = torch.exp(-(((r.unsqueeze(-1) - self.centres) / self.width) ** 2)) * fcut.unsqueeze(-1)
        # species-pair mixing of the basis. One or two species: one GEMM to all S^2 pair
        # channels, then pick the pair's. More: each edge takes its pair's [n_basis, nr] weights
        # (the all-channel GEMM, and the zero-filled [E, S^2, nr] gradient of the pick, grow as
        # S^2: 4.5x slower at S = 4 in float64)
        ns = self.n_species
        pair = species[i] * ns + species[j]
        if self.pair_gemm:
            w = self.radial_weights.permute(1, 0, 2).reshape(self.n_basis, ns * ns * nr)
            allpairs = (basis @ w).view(-1, ns * ns, nr)  # [E, S*S, nr]
            radial = allpairs.gather(1, pair.view(-1, 1, 1).expand(-1, 1, nr)).squeeze(1)
        else:
            radial = torch.bmm(basis.unsqueeze(1), self.radial_weights[pair]).squeeze(1)  # [E, nr]
        x, y, z = u[:, 0], u[:, 1], u[:, 2]
        ang = torch.stack(
            [torch.ones_like(x), x, y, z,
             x * x, y * y, z * z, x * y, x * z, y * z,
             x * x * x, y * y * y, z * z * z, x * x * y, x * x * z, x * y * y, y * y * z,
             x * z * z, y * z * z, x * y * z], dim=-1)  # [E, 20]
        # moments A[i] = sum_{e: i_e = i} radial_e (x) ang_e as a batched GEMM over padded
        # neighbour slots (no [E, nr, 20] intermediate, no scatter in the backward pass)
        rpad = torch.zeros(n_centres * n_slots, nr, dtype=edge_vec.dtype, device=edge_vec.device)
        rpad = rpad.index_copy(0, flat, radial).view(n_centres, n_slots, nr)
        apad = torch.zeros(n_centres * n_slots, 20, dtype=edge_vec.dtype, device=edge_vec.device)
        apad = apad.index_copy(0, flat, ang).view(n_centres, n_slots, 20)
        return torch.bmm(rpad.transpose(1, 2), apad)  # [n, nr, 20]

    def invariants(self, a: Tensor) -> Tensor:
        """The atom-level half of the descriptor: the rotation invariants [n, dim] of the moments
        A of :meth:`moments`."""
        n = a.shape[0]
        nr = self.n_radial
        a0 = a[:, :, 0]
        a1 = a[:, :, 1:4]
        a2s = a[:, :, 4:10]
        a3s = a[:, :, 10:20]
        # all [nr, nr] Gram matrices with one bmm each, then the a <= b entries by flat index
        g1 = torch.bmm(a1, a1.transpose(1, 2)).reshape(n, nr * nr).index_select(1, self.pair_flat)
        # symmetric storage: weight one factor by the (exact, integer) multiplicities
        g2 = torch.bmm(a2s * self.mult2, a2s.transpose(1, 2)).reshape(n, nr * nr).index_select(1, self.pair_flat)
        g3 = torch.bmm(a3s * self.mult3, a3s.transpose(1, 2)).reshape(n, nr * nr).index_select(1, self.pair_flat)
        xx, yy, zz, xy, xz, yz = a[:, :, 4:10].unbind(-1)
        a2 = torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], dim=-1).view(n, nr, 3, 3)
        m_ab = torch.einsum("naij,nbjk->nabik", a2, a2)  # [n, nr, nr, 3, 3]
        tr3 = torch.einsum("nabik,ncki->nabc", m_ab, a2)
        g4 = tr3.reshape(n, nr * nr * nr).index_select(1, self.triple_flat)
        a2a1 = torch.einsum("nbij,ncj->nbci", a2, a1)  # [n, b, c, 3]
        g5full = torch.einsum("nai,nbci->nbac", a1, a2a1)  # [n, b, a, c]: A1_a . A2_b . A1_c
        g5 = g5full.reshape(n, nr, nr * nr).index_select(2, self.pair_flat)  # a <= c
        return torch.cat([a0, g1, g2, g3, g4, g5.reshape(n, -1)], dim=-1)
