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

from .descriptor import GaussianMoments
from .repulsion import DEFAULT_RANGE, PairRepulsion

BIAS_FACTOR = 0.1


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


def scaled_mm(x: Tensor, w: Tensor, alpha: float, add: Tensor) -> Tensor:
    """alpha x @ w (+ ``add``, broadcast to the result; empty: nothing) for x [..., k], w [k, m],
    as one GEMM (the scaling is BLAS's alpha, the addition its beta term)."""
    x2 = x.reshape(-1, x.shape[-1])
    if add.numel() == 0:
        out = torch.addmm(x2.new_zeros(1), x2, w, beta=0.0, alpha=alpha)
    else:
        out = torch.addmm(add.expand(x.shape[:-1] + (w.shape[1],)).reshape(-1, w.shape[1]), x2, w,
                          alpha=alpha)
    return out.view(x.shape[:-1] + (w.shape[1],))


def _silu_grad(o: Tensor) -> Tensor:
    s = torch.sigmoid(o)
    return s * (1.0 + o * (1.0 - s))


class MLIP(nn.Module):
    """Strictly local MLIP: :class:`GaussianMoments` + MLP readout with per-species scale/shift."""

    def __init__(self, atomic_numbers: List[int], cutoff: float, n_radial: int = 8,
                 n_basis: int = 12, hidden: List[int] = [256, 256], seed: int = 0,
                 repulsion: bool = True, repulsion_range: float = DEFAULT_RANGE,
                 pair_gemm: bool | None = None):
        """``repulsion``, ``repulsion_range``: the short-range baseline (:mod:`.repulsion`);
        ``pair_gemm``: the descriptor's route of the species-pair mixing
        (:class:`GaussianMoments`; None: the faster for the number of species)."""
        super().__init__()
        self.atomic_numbers = list(int(z) for z in atomic_numbers)
        self.n_species = len(self.atomic_numbers)
        self.cutoff = float(cutoff)
        self.descriptor = GaussianMoments(self.n_species, cutoff, n_radial, n_basis,
                                          pair_gemm=pair_gemm)
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
        # short-range ZBL baseline (model/repulsion.py): no parameters, zero where data are
        self.use_repulsion = bool(repulsion)
        self.repulsion = PairRepulsion(self.atomic_numbers, repulsion_range)

    def baseline(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor,
                 n_centres: int) -> Tensor:
        """Per-atom energies [n_centres] of the repulsive baseline (zeros when it is off)."""
        if self.use_repulsion:
            return self.repulsion(edge_vec, edge_index, species, n_centres)
        return torch.zeros(n_centres, dtype=edge_vec.dtype, device=edge_vec.device)

    @torch.jit.export
    def baseline_state(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor,
                       n_centres: int) -> Tuple[Tensor, Tensor]:
        """:meth:`baseline`'s energies and the gradient of their sum w.r.t. the edge vectors
        [E, 3], without autograd."""
        if self.use_repulsion:
            return self.repulsion.energy_and_gradient(edge_vec, edge_index, species, n_centres)
        return (torch.zeros(n_centres, dtype=edge_vec.dtype, device=edge_vec.device),
                torch.zeros_like(edge_vec))

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

    @torch.jit.export
    def readout_state(self, desc: Tensor, species: Tensor,
                      with_grads: bool) -> Tuple[Tensor, List[Tensor]]:
        """Per-atom energies [n] (the readout's, no baseline) without an autograd graph, and the
        state of :meth:`readout_vjp`: layer inputs h_0..h_L, pre-activations o_0..o_{L-1},
        silu'(o_l), the species scale [n, 1], and with ``with_grads`` g_0..g_L (g_l = dE_i/do_l,
        as :meth:`readout_with_grads`) and t_0..t_{L-1} (g_l = t_l silu'(o_l))."""
        h = (desc - self.desc_mean) * self.desc_inv_std
        n_layers = len(self.layers)
        hs: List[Tensor] = []
        outs: List[Tensor] = []
        dsil: List[Tensor] = []
        out = h
        for k, layer in enumerate(self.layers):
            hs.append(h)
            o = scaled_mm(h, layer.weight.t(), layer.in_factor, layer.bias * layer.bias_factor)
            if k < n_layers - 1:
                outs.append(o)
                dsil.append(_silu_grad(o))
                h = torch.nn.functional.silu(o)
            else:
                out = o
        scale = self.species_scale[species]
        energies = out.squeeze(-1) * scale + self.species_shift[species]
        scale = scale.unsqueeze(-1)
        gs: List[Tensor] = []
        ts: List[Tensor] = []
        if with_grads:
            weights: List[Tensor] = []
            factors: List[float] = []
            for lin in self.layers:
                weights.append(lin.weight)
                factors.append(lin.in_factor)
            g = scale
            gs.append(g)
            for k in range(n_layers - 1, 0, -1):
                t = scaled_mm(g, weights[k], factors[k], g[:0])
                g = t * dsil[k - 1]
                ts.insert(0, t)
                gs.insert(0, g)
        return energies, hs + outs + dsil + [scale] + gs + ts

    @torch.jit.export
    def readout_vjp(self, state: List[Tensor], cot_energy: Tensor, h_extra: List[Tensor],
                    o_extra: List[Tensor], join0: Tensor) -> Tensor:
        """Cotangents of the descriptor [B (+ J), n, dim] from :meth:`readout_state`'s state:
        ``cot_energy`` [B, n] on the per-atom energies, ``h_extra[l]`` [B, n, d_l] added to the
        cotangent of layer input h_l, ``o_extra[l]`` [B, n, d_{l+1}] to that of o_l (empty
        tensors: nothing), ``join0`` [J, n, d_1]: J more cotangents of o_0 that join at the first
        layer (e.g. the energy's, g_0, when :meth:`readout_state` computed it)."""
        n_layers = len(self.layers)
        dsil = state[2 * n_layers - 1:3 * n_layers - 2]
        scale = state[3 * n_layers - 2]
        weights: List[Tensor] = []
        factors: List[float] = []
        for layer in self.layers:
            weights.append(layer.weight)
            factors.append(layer.in_factor)
        o_bar = cot_energy.unsqueeze(-1) * scale  # [B, n, 1]
        h_bar = o_bar
        for k in range(n_layers - 1, -1, -1):
            extra = h_extra[k]
            if k == 0 and join0.numel() > 0:
                if extra.numel() > 0:  # the joining cotangents have no extra term
                    extra = torch.cat([extra.expand(o_bar.shape[0], -1, -1), torch.zeros(
                        join0.shape[0], extra.shape[1], extra.shape[2], dtype=extra.dtype,
                        device=extra.device)], 0)
                o_bar = torch.cat([o_bar, join0], 0)
            w = weights[k]
            width = w.shape[1]
            if k == 0 and width % 16 != 0 and o_bar.shape[0] * o_bar.shape[1] >= 256:
                # MKL's SGEMM is ~1.5x slower with an output width like the descriptor's 371:
                # pad it to a multiple of 16
                w = torch.cat([w, w.new_zeros(w.shape[0], 16 - width % 16)], 1)
                h_bar = scaled_mm(o_bar, w, factors[k], w[:0])[:, :, :width]
                if extra.numel() > 0:
                    h_bar = h_bar + extra
            else:
                h_bar = scaled_mm(o_bar, w, factors[k], extra)
            if k > 0:
                o_bar = h_bar * dsil[k - 1]
                if o_extra[k - 1].numel() > 0:
                    o_bar = o_bar + o_extra[k - 1]
        return h_bar * self.desc_inv_std

    @torch.jit.export
    def energies_and_gradient(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor,
                              n_centres: int) -> Tuple[Tensor, Tensor]:
        """Per-atom energies [n_centres] and the gradient of their sum w.r.t. the edge vectors
        [E, 3] in closed form (the hand-written VJPs of :meth:`readout_vjp` and
        :meth:`GaussianMoments.backward_state`, no autograd w.r.t. the edge vectors). Under
        autograd the result is differentiable w.r.t. the parameters: a force loss then needs one
        backward pass instead of a double backward (training); under no_grad no graph at all."""
        desc, dstate = self.descriptor.forward_state(edge_vec, edge_index, species, n_centres)
        e, rstate = self.readout_state(desc, species[:n_centres], False)
        base_e, base_g = self.baseline_state(edge_vec, edge_index, species, n_centres)
        empty = edge_vec.new_zeros(0)
        n_layers = len(self.layers)
        h_extra: List[Tensor] = [empty for _ in range(n_layers)]
        o_extra: List[Tensor] = [empty for _ in range(n_layers - 1)]
        gd = self.readout_vjp(rstate, edge_vec.new_ones(1, n_centres), h_extra, o_extra, empty)
        return e + base_e, self.descriptor.backward_state(dstate, gd)[0] + base_g

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
        """Per-atom energies [n_centres] (eV): the readout of the descriptor + the baseline."""
        desc = self.descriptor(edge_vec, edge_index, species, n_centres)
        return (self.readout(desc, species[:n_centres])
                + self.baseline(edge_vec, edge_index, species, n_centres))

    def readout(self, desc: Tensor, sp: Tensor) -> Tensor:
        """Per-atom energies [n] from descriptors [n, dim] and species [n]."""
        h = (desc - self.desc_mean) * self.desc_inv_std
        n_layers = len(self.layers)
        for k, layer in enumerate(self.layers):
            h = layer(h)
            if k < n_layers - 1:
                h = torch.nn.functional.silu(h)
        return h.squeeze(-1) * self.species_scale[sp] + self.species_shift[sp]

    def forward(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int) -> Tensor:
        return self.atomic_energies(edge_vec, edge_index, species, n_centres)
