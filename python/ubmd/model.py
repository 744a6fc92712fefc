"""A strictly local MLIP: Gaussian-moment descriptor + per-species scaled MLP readout.

Every atomic energy E_i depends only on the neighbours of i within one cutoff r_c, so LAMMPS domain
decomposition needs ghost atoms within one cutoff only. The model works on *edge vectors*
``r_ij = r_j - r_i`` (Å): forces, the virial and bias forces are derivatives w.r.t. them.

Descriptor (one interaction, rotation invariant): species-pair-mixed Gaussian radial functions
R_n(r) (n < n_radial) times a cosine cutoff; moments A_n^(k) = sum_j R_n(r_ij) u_ij^(x k) for
k = 0..3 (u = r/|r|, symmetric storage); invariants: A0_n, A1_n.A1_m, A2_n:A2_m, A3_n:A3_m,
tr(A2_a A2_b A2_c), A1_a.A2_b.A1_c. Readout: standardise, MLP with SiLU and NTK-scaled linear
layers o = W h / sqrt(d_in) + 0.1 b, then E_i = scale_Z y_i + shift_Z (eV).

``readout_with_grads`` also returns, for every linear layer l, its extended input
x~_l = [h_l / sqrt(d_in), 0.1] and the output gradient g_l = dE_i/do_l (computed in closed form
inside the graph, so gradient features stay differentiable w.r.t. positions and strain).
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

BIAS_FACTOR = 0.1
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
                 r_min: float = 0.5):
        super().__init__()
        self.n_species = n_species
        self.cutoff = float(cutoff)
        self.n_radial = n_radial
        self.n_basis = n_basis
        self.pair_gemm = n_species <= PAIR_GEMM_MAX_SPECIES
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
        a = torch.bmm(rpad.transpose(1, 2), apad)  # [n, nr, 20]
        n = n_centres
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
        return torch.cat([a0, g1, g2, g3, g4, g5.reshape(n_centres, -1)], dim=-1)


class Linear(nn.Module):
    """NTK-parameterised linear layer: o = x W^T / sqrt(d_in) + 0.1 b."""

    def __init__(self, d_in: int, d_out: int, generator: torch.Generator):
        super().__init__()
        self.d_in = d_in
        self.d_out = d_out
        self.weight = nn.Parameter(torch.randn(d_out, d_in, generator=generator))
        self.bias = nn.Parameter(torch.zeros(d_out))
        self.in_factor = 1.0 / math.sqrt(d_in)
        self.bias_factor = BIAS_FACTOR

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.in_factor) @ self.weight.t() + self.bias_factor * self.bias


def _silu_grad(o: Tensor) -> Tensor:
    s = torch.sigmoid(o)
    return s * (1.0 + o * (1.0 - s))


class MLIP(nn.Module):
    """Strictly local MLIP: :class:`GaussianMoments` + MLP readout with per-species scale/shift."""

    def __init__(self, atomic_numbers: List[int], cutoff: float, n_radial: int = 8,
                 n_basis: int = 12, hidden: List[int] = [256, 256], seed: int = 0):
        super().__init__()
        self.atomic_numbers = list(int(z) for z in atomic_numbers)
        self.n_species = len(self.atomic_numbers)
        self.cutoff = float(cutoff)
        self.descriptor = GaussianMoments(self.n_species, cutoff, n_radial, n_basis)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            self.descriptor.radial_weights.copy_(
                torch.randn(self.descriptor.radial_weights.shape, generator=gen)
                / math.sqrt(n_basis))
        dims = [self.descriptor.dim] + list(hidden) + [1]
        self.layers = nn.ModuleList([Linear(dims[k], dims[k + 1], gen) for k in range(len(dims) - 1)])
        self.register_buffer("desc_mean", torch.zeros(self.descriptor.dim))
        self.register_buffer("desc_inv_std", torch.ones(self.descriptor.dim))
        self.register_buffer("species_scale", torch.ones(self.n_species))
        self.register_buffer("species_shift", torch.zeros(self.n_species))

    def readout_with_grads(self, desc: Tensor, species: Tensor) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
        """Per-atom energies [n] and, per linear layer, x~_l [n, d_in+1] and g_l [n, d_out]."""
        h = (desc - self.desc_mean) * self.desc_inv_std
        xs: List[Tensor] = []
        outs: List[Tensor] = []
        weights: List[Tensor] = []
        factors: List[float] = []
        n_layers = len(self.layers)
        for k, layer in enumerate(self.layers):
            ones = torch.full((h.shape[0], 1), layer.bias_factor, dtype=h.dtype, device=h.device)
            xs.append(torch.cat([h * layer.in_factor, ones], dim=-1))
            o = layer(h)
            outs.append(o)
            weights.append(layer.weight)
            factors.append(layer.in_factor)
            if k < n_layers - 1:
                h = torch.nn.functional.silu(o)
        scale = self.species_scale[species]
        energies = outs[-1].squeeze(-1) * scale + self.species_shift[species]
        g = scale.unsqueeze(-1)
        gs: List[Tensor] = [g]
        for k in range(n_layers - 1, 0, -1):
            g = (g @ weights[k]) * factors[k] * _silu_grad(outs[k - 1])
            gs.insert(0, g)
        return energies, xs, gs

    def readout_last_layer(self, desc: Tensor, species: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-atom energies [n] and last-layer features g_L (x) x~_L [n, d_in(L) + 1].

        Cheaper than :meth:`readout_with_grads`: g_L = scale_Z needs no backward through the MLP.
        """
        h = (desc - self.desc_mean) * self.desc_inv_std
        n_layers = len(self.layers)
        x_last = h
        o = h
        for k, layer in enumerate(self.layers):
            if k == n_layers - 1:
                ones = torch.full((h.shape[0], 1), layer.bias_factor, dtype=h.dtype, device=h.device)
                x_last = torch.cat([h * layer.in_factor, ones], dim=-1)
            o = layer(h)
            if k < n_layers - 1:
                h = torch.nn.functional.silu(o)
        scale = self.species_scale[species]
        energies = o.squeeze(-1) * scale + self.species_shift[species]
        return energies, x_last * scale.unsqueeze(-1)

    def atomic_energies(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int) -> Tensor:
        desc = self.descriptor(edge_vec, edge_index, species, n_centres)
        return self.readout(desc, species[:n_centres])

    def readout(self, desc: Tensor, sp: Tensor) -> Tensor:
        """Per-atom energies [n] from descriptors [n, dim] and species [n]."""
        h = (desc - self.desc_mean) * self.desc_inv_std
        n_layers = len(self.layers)
        for k, layer in enumerate(self.layers):
            h = layer(h)
            if k < n_layers - 1:
                h = torch.nn.functional.silu(h)
        return h.squeeze(-1) * self.species_scale[sp] + self.species_shift[sp]

    def atomic_energies_from_slots(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor,
                                   n_centres: int, flat: Tensor, n_slots: int) -> Tensor:
        """:meth:`atomic_energies` with the descriptor's slot index given (see
        :meth:`GaussianMoments.slot_index`)."""
        desc = self.descriptor.from_slots(edge_vec, edge_index, species, n_centres, flat, n_slots)
        return self.readout(desc, species[:n_centres])

    def forward(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int) -> Tensor:
        return self.atomic_energies(edge_vec, edge_index, species, n_centres)
