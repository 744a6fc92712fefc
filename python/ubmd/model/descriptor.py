"""Gaussian-moment descriptor of atomic neighbourhoods: rotation and permutation invariant, strictly
local (one cutoff), evaluated on edge vectors ``r_ij = r_j - r_i`` (Å).

Species-pair-mixed Gaussian radial functions R_n(r) (n < n_radial) times a cosine cutoff; moments
A_n^(k) = sum_j R_n(r_ij) u_ij^(x k) for k = 0..3 (u = r/|r|, symmetric storage); invariants:
A0_n, A1_n.A1_m, A2_n:A2_m, A3_n:A3_m, tr(A2_a A2_b A2_c), A1_a.A2_b.A1_c.

Layout (issue #25): edge quantities are [components, edges] and atom quantities
[components, ..., atoms] (the small per-atom contractions become element-wise products over
contiguous atom rows instead of batches of 3x3 matrix products, and the small GEMMs of the
radial mixing have the edges as their long side). ``tr(A_a A_b A_c)`` is the Frobenius product
of the Jordan product A_a A_b + A_b A_a (27 products per pair a <= b) with A_c, and
``A1_a.A2_b.A1_c`` that of A2_b with the symmetrised outer product of A1_a and A1_c.

:meth:`GaussianMoments.forward` is differentiable (training, the ASE calculator);
:meth:`GaussianMoments.forward_state` / :meth:`GaussianMoments.backward_state` are the same
forward without autograd and its hand-written vector-Jacobian product for any number of
cotangents at once (the model file's one-pass bias: the forces and the bias gradient in one
traversal, docs/model_file.md).
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

from .descriptor_tables import angular_derivatives, jordan_terms, outer_terms, sym_indices

PAIR_GEMM_MAX_SPECIES = 2  # radial mixing through one GEMM to all pair channels up to this
# ... and, with more species, whenever that GEMM wastes fewer multiply-adds than this (small
# graphs: one GEMM costs less than one small GEMM per species pair)
PAIR_GEMM_WASTE = 5_000_000


class _Transposed(torch.autograd.Function):
    """x.permute(2, 1, 0).contiguous() whose backward returns a contiguous gradient: a permuted
    gradient makes the batched product before it take ATen's one-matrix-at-a-time path (no
    unit stride in its matrices), about 10x slower on the per-atom matrices of a training batch."""

    @staticmethod
    def forward(x):
        return x.permute(2, 1, 0).contiguous()

    @staticmethod
    def setup_context(ctx, inputs, output):  # separate from forward: torch.compile traces it
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad.permute(2, 1, 0).contiguous()


class GaussianMoments(nn.Module):
    """Gaussian-moment descriptor of atomic neighbourhoods (rotation/permutation invariant)."""

    def __init__(self, n_species: int, cutoff: float, n_radial: int = 8, n_basis: int = 12,
                 r_min: float = 0.5, pair_gemm: bool | None = None):
        """``pair_gemm``: how the radial basis is mixed per species pair (same numbers either
        way): one GEMM to all pair channels, then the pair's picked (True), or the edges
        grouped by pair and one GEMM per pair (False); None picks the faster, the GEMM up to
        ``PAIR_GEMM_MAX_SPECIES`` species."""
        super().__init__()
        self.n_species = n_species
        self.cutoff = float(cutoff)
        self.n_radial = n_radial
        self.n_basis = n_basis
        self.pair_gemm = bool(n_species <= PAIR_GEMM_MAX_SPECIES if pair_gemm is None else pair_gemm)
        self.pair_gemm_waste = PAIR_GEMM_WASTE
        self.register_buffer("centres", torch.linspace(r_min, cutoff, n_basis))
        self.width = float((cutoff - r_min) / (n_basis - 1))
        g = torch.Generator().manual_seed(1234)
        w = torch.randn(n_species * n_species, n_basis, n_radial, generator=g) / math.sqrt(n_basis)
        self.radial_weights = nn.Parameter(w)
        # multiplicities of symmetric components: rank-2 [xx,yy,zz,xy,xz,yz], rank-3 10 comps
        self.register_buffer("mult2", torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 2.0]))
        self.register_buffer(
            "mult3", torch.tensor([1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 6.0]))
        self.register_buffer("pairs", sym_indices(n_radial, 2))
        self.register_buffer("triples", sym_indices(n_radial, 3))
        # derived index and coefficient tables (non-persistent: state dicts unchanged)
        p, t = self.pairs, self.triples
        self.register_buffer("p0", p[:, 0].contiguous(), persistent=False)
        self.register_buffer("p1", p[:, 1].contiguous(), persistent=False)
        pair_id = {(int(a), int(b)): k for k, (a, b) in enumerate(p.tolist())}
        t01 = torch.tensor([pair_id[(int(a), int(b))] for a, b, _ in t.tolist()], dtype=torch.long)
        # g4 = tr(A_a A_b A_c) at (c, pair (a, b)) of the [nr, P] products
        self.register_buffer("triple_flat", t[:, 2] * p.shape[0] + t01, persistent=False)
        # bilinear maps as matrices on outer products: jordan = jordan_mat @ (x (x) y) [6, 36],
        # outer = outer_mat @ (x (x) y) [6, 9]; their adjoints in the first argument as
        # [6, 36] matrices on (cotangent (x) y)
        jmat, omat = torch.zeros(6, 6, 6), torch.zeros(6, 3, 3)
        for s_, a_, b_ in jordan_terms().tolist():
            jmat[s_, a_, b_] = 1.0
        for s_, a_, b_ in outer_terms().tolist():
            omat[s_, a_, b_] = 1.0
        self.register_buffer("jordan_mat", jmat.reshape(6, 36), persistent=False)
        self.register_buffer("outer_mat", omat.reshape(6, 9), persistent=False)
        # d outer / d x[a] = sum_{s, b} omat[s, a, b] g[s] y[b]; d / d y[b]: sum_{s, a} g[s] x[a]
        self.register_buffer("outer_adj_a", omat.permute(1, 0, 2).reshape(3, 18), persistent=False)
        self.register_buffer("outer_adj_b", omat.permute(2, 0, 1).reshape(3, 18), persistent=False)
        # tr(A_a A_b A_c) is symmetric in (a, b, c): d/dA_x of sum_t G[t] tr(...) is
        # sum_p H[x, p] jordan_p with H[x, p=(b, c)] = 3 m_p G[t(x, b, c)] / N(t) (m_p: 2 for b < c,
        # 1 for b = c; N: the number of orderings of the sorted triple t)
        trip_id = {tuple(int(v) for v in row): k for k, row in enumerate(t.tolist())}
        tri_of, tri_coef = [], []
        for x_ in range(n_radial):
            for b_, c_ in p.tolist():
                key = tuple(sorted((x_, b_, c_)))
                tri_of.append(trip_id[key])
                n_orders = 6 if len(set(key)) == 3 else (3 if len(set(key)) == 2 else 1)
                tri_coef.append(3.0 * (2.0 if b_ < c_ else 1.0) / n_orders)
        self.register_buffer("tri_of", torch.tensor(tri_of, dtype=torch.long), persistent=False)
        self.register_buffer("tri_coef", torch.tensor(tri_coef), persistent=False)
        # pair p -> its radial channels a = p0[p], b = p1[p] as one [nr, 2P] 0/1 matrix, and the
        # flat [nr, nr] position of every pair (Gram cotangents as symmetric matrices)
        scatter = torch.zeros(n_radial, 2 * p.shape[0])
        scatter[p[:, 0], torch.arange(p.shape[0])] = 1.0
        scatter[p[:, 1], p.shape[0] + torch.arange(p.shape[0])] = 1.0
        self.register_buffer("pair_scatter", scatter, persistent=False)
        self.register_buffer("pair_flat", p[:, 0] * n_radial + p[:, 1], persistent=False)
        self.register_buffer("ang_deriv", angular_derivatives().to(w.dtype).t().contiguous(),
                             persistent=False)  # [20, 30]
        self.dim = (n_radial + 3 * self.pairs.shape[0] + self.triples.shape[0]
                    + n_radial * self.pairs.shape[0])

    # ------------------------------------------------------------------ graph-only preparation

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

    def pair_groups(self, edge_index: Tensor, species: Tensor) -> Tuple[Tensor, List[int]]:
        """The edges grouped by species pair (graph only): the permutation ``order`` and the edge
        count of each pair; ``order`` empty and no counts for the one-GEMM route (``pair_gemm``,
        or a graph small enough for it), one count for one species."""
        ns = self.n_species
        n_edges = int(edge_index.shape[1])
        if ns == 1:
            return edge_index.new_zeros(0), [n_edges]
        if self.pair_gemm or (
                n_edges * (ns * ns - 1) * self.n_radial * self.n_basis < self.pair_gemm_waste):
            return edge_index.new_zeros(0), torch.jit.annotate(List[int], [])
        pair = species.index_select(0, edge_index[0]) * ns + species.index_select(0, edge_index[1])
        order = torch.argsort(pair, stable=True)
        counts: List[int] = torch.bincount(pair, minlength=ns * ns).tolist()
        return order, counts

    # ------------------------------------------------------------------ forward

    def forward(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int) -> Tensor:
        """Descriptor [n_centres, dim] of centres 0..n_centres-1 from the edges (i, j)."""
        flat, n_slots = self.slot_index(edge_index[0], n_centres)
        return self.from_slots(edge_vec, edge_index, species, n_centres, flat, n_slots)

    def from_slots(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
                   flat: Tensor, n_slots: int) -> Tensor:
        """:meth:`forward` with the slot index of :meth:`slot_index` given (no data-dependent
        shapes inside but the pair grouping: what ``training.compile`` traces)."""
        order, counts = self.pair_groups(edge_index, species)
        at, _ = self._moments_t(edge_vec, edge_index, species, n_centres, flat, n_slots, order,
                                counts, False)
        return self._invariants_t(at, False)[0]

    @torch.jit.export
    def moments(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
                flat: Tensor, n_slots: int) -> Tensor:
        """The edge-level half of the descriptor: the moments A [n_centres, n_radial, 20]
        (k = 0..3 in symmetric storage: 1, xyz, 6 rank-2, 10 rank-3 components) of every centre
        (slot index of :meth:`slot_index`)."""
        order, counts = self.pair_groups(edge_index, species)
        at, _ = self._moments_t(edge_vec, edge_index, species, n_centres, flat, n_slots, order,
                                counts, False)
        return at.permute(2, 1, 0)

    @torch.jit.export
    def invariants(self, a: Tensor) -> Tensor:
        """The atom-level half of the descriptor: the rotation invariants [n, dim] of the moments
        A of :meth:`moments`."""
        return self._invariants_t(a.permute(2, 1, 0).contiguous(), False)[0]

    def _radial_t(self, basis_t: Tensor, edge_index: Tensor, species: Tensor,
                  counts: List[int]) -> Tensor:
        """Radial functions [n_radial, E] from the basis [n_basis, E] (edges in pair groups)."""
        ns, nr = self.n_species, self.n_radial
        if ns == 1:
            return self.radial_weights[0].t() @ basis_t
        if len(counts) == 0:  # one GEMM to all pair channels, then each edge's pair
            pair = species.index_select(0, edge_index[0]) * ns + species.index_select(0, edge_index[1])
            w = self.radial_weights.permute(0, 2, 1).reshape(ns * ns * nr, self.n_basis)
            allpairs = (w @ basis_t).view(ns * ns, nr, -1)  # [S*S, nr, E]
            # the pick as a one-hot sum (a gather's gradient is a slow scatter in training)
            onehot = (pair.unsqueeze(0) == torch.arange(ns * ns, device=pair.device).unsqueeze(1))
            return (allpairs * onehot.to(basis_t.dtype).unsqueeze(1)).sum(0)
        blocks: List[Tensor] = []
        start = 0
        for q, c in enumerate(counts):
            if c > 0:
                blocks.append(self.radial_weights[q].t() @ basis_t[:, start:start + c])
            start += c
        if len(blocks) == 0:
            return basis_t.new_zeros(nr, 0)
        return torch.cat(blocks, 1)

    def _moments_t(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
                   flat: Tensor, n_slots: int, order: Tensor, counts: List[int],
                   save: bool) -> Tuple[Tensor, List[Tensor]]:
        """The moments as [20, n_radial, n_centres] (and, if ``save``, what
        :meth:`backward_state` needs). ``order``: the pair grouping of :meth:`pair_groups`."""
        nr = self.n_radial
        if order.numel() > 0:
            edge_vec = edge_vec.index_select(0, order)
            flat = flat.index_select(0, order)
            edge_index = edge_index.index_select(1, order)
        ev = edge_vec.t()  # [3, E]
        r = torch.sqrt((ev * ev).sum(0) + 1e-30)
        u = ev / r
        arg = math.pi * r / self.cutoff
        inside = r < self.cutoff
        fcut = torch.where(inside, 0.5 * (torch.cos(arg) + 1.0), torch.zeros_like(r))
        z = (r - self.centres.unsqueeze(1)) / self.width  # [nb, E]
        gauss = torch.exp(-(z ** 2))
        basis = gauss * fcut
        radial = self._radial_t(basis, edge_index, species, counts)  # [nr, E]
        # angular monomials [E + 1, 20]; the extra last row (u = 0) is what empty neighbour
        # slots point to (its radial functions are zero)
        ue = torch.cat([u, torch.zeros(3, 1, dtype=u.dtype, device=u.device)], 1)
        x, y, zz = ue[0], ue[1], ue[2]
        ang = torch.stack(
            [torch.ones_like(x), x, y, zz,
             x * x, y * y, zz * zz, x * y, x * zz, y * zz,
             x * x * x, y * y * y, zz * zz * zz, x * x * y, x * x * zz, x * y * y, y * y * zz,
             x * zz * zz, y * zz * zz, x * y * zz], dim=1)
        radial = torch.cat([radial, torch.zeros(nr, 1, dtype=u.dtype, device=u.device)], 1)
        # moments A[i] = sum_{e: i_e = i} radial_e (x) ang_e as a batched GEMM over padded
        # neighbour slots (gathers: no [E, nr, 20] intermediate, no scatter)
        n_edges = ev.shape[1]
        slot_edge = torch.full((n_centres * n_slots,), n_edges, dtype=flat.dtype,
                               device=flat.device).index_copy(
            0, flat, torch.arange(n_edges, dtype=flat.dtype, device=flat.device))
        rpad = radial.index_select(1, slot_edge).view(nr, n_centres, n_slots)
        apad = ang.index_select(0, slot_edge).view(n_centres, n_slots, 20)
        am = torch.bmm(rpad.transpose(0, 1), apad)  # [n, nr, 20]
        if not torch.jit.is_scripting() and am.requires_grad:
            at = _Transposed.apply(am)  # contiguous gradients for bmm's backward (training)
        else:
            at = am.permute(2, 1, 0).contiguous()  # [20, nr, n]
        state: List[Tensor] = []
        if save:
            dfcut = torch.where(inside, -0.5 * math.pi / self.cutoff * torch.sin(arg),
                                torch.zeros_like(r))
            dbasis = gauss * (dfcut - (2.0 / self.width) * z * fcut)  # d basis / d r
            dradial = self._radial_t(dbasis, edge_index, species, counts)  # d radial / d r
            mono = ang[:n_edges, :10].t().contiguous()  # [10, E]
            state = [u, r, dradial, mono, rpad, apad, flat, order, am]
        return at, state

    def _invariants_t(self, at: Tensor, save: bool) -> Tuple[Tensor, List[Tensor]]:
        """Invariants [n, dim] of the moments [20, nr, n] (and what the backward needs)."""
        nr = self.n_radial
        n = at.shape[2]
        n_pairs = self.p0.shape[0]
        x0 = at.index_select(1, self.p0)  # [20, P, n]: A_a of every pair a <= b
        x1 = at.index_select(1, self.p1)  # A_b
        g1 = (x0[1:4] * x1[1:4]).sum(0)
        g2 = (x0[4:10] * (x1[4:10] * self.mult2.view(6, 1, 1))).sum(0)
        g3 = (x0[10:20] * (x1[10:20] * self.mult3.view(10, 1, 1))).sum(0)
        a2 = at[4:10]  # [6, nr, n]
        # Jordan products A_a A_b + A_b A_a and symmetrised outer products A1_a A1_c^T + A1_c
        # A1_a^T of the pairs, [6, P, n] each (symmetric storage)
        jordan = (self.jordan_mat @ (x0[4:10].unsqueeze(1) * x1[4:10].unsqueeze(0)).view(
            36, n_pairs * n)).view(6, n_pairs, n)
        outer = (self.outer_mat @ (x0[1:4].unsqueeze(1) * x1[1:4].unsqueeze(0)).view(
            9, n_pairs * n)).view(6, n_pairs, n)
        # one batched product per atom: <A2_c, jordan_ab> = tr(A_a A_b A_c) and
        # <A2_b, outer_ac> = A1_a . A2_b . A1_c, [n, nr, 2P]
        a2m = a2.permute(2, 1, 0).contiguous()  # [n, nr, 6]
        pm = torch.cat([jordan, outer], 1).permute(2, 0, 1).contiguous()  # [n, 6, 2P]
        prod = torch.bmm(a2m, pm)
        g4 = prod[:, :, :n_pairs].reshape(n, nr * n_pairs).index_select(1, self.triple_flat)
        g5 = prod[:, :, n_pairs:].reshape(n, nr * n_pairs)  # (b, a <= c), b-major
        desc = torch.cat([at[0].t(), g1.t(), g2.t(), g3.t(), g4, g5], 1)  # [n, dim]
        state: List[Tensor] = []
        if save:
            state = [at, x0, x1, a2m, pm]
        return desc, state

    # ------------------------------------------------------------------ no autograd: state + VJP

    @torch.jit.export
    def forward_state(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor,
                      n_centres: int) -> Tuple[Tensor, List[Tensor]]:
        """The descriptor [n_centres, dim] without an autograd graph, and the state from which
        :meth:`backward_state` computes vector-Jacobian products (run under no_grad)."""
        flat, n_slots = self.slot_index(edge_index[0], n_centres)
        order, counts = self.pair_groups(edge_index, species)
        at, edge_state = self._moments_t(edge_vec, edge_index, species, n_centres, flat, n_slots,
                                         order, counts, True)
        desc, atom_state = self._invariants_t(at, True)
        return desc, edge_state + atom_state

    @torch.jit.export
    def backward_state(self, state: List[Tensor], grad_desc: Tensor) -> Tensor:
        """Vector-Jacobian products of the descriptor: ``grad_desc`` [B, n, dim] (B cotangents)
        -> [B, E, 3], the gradients w.r.t. the edge vectors (edge order of the input)."""
        u, r, dradial, mono, rpad, apad, flat, order, am = state[:9]
        at, x0, x1, a2m, pm = state[9:14]
        nr = self.n_radial
        n = at.shape[2]
        n_pairs = self.p0.shape[0]
        n_trip = self.triple_flat.shape[0]
        nb = grad_desc.shape[0]
        k0 = nr
        k1 = k0 + n_pairs
        k2 = k1 + n_pairs
        k3 = k2 + n_pairs
        k4 = k3 + n_trip
        dt, dev = at.dtype, at.device
        # g4 = tr(A_a A_b A_c) and g5 = A1_a . A2_b . A1_c: A2 gets sum_p H[x, p] jordan_p
        # (see tri_of) + sum_p G5[x, p] outer_p, one product per atom with pm = [jordan, outer]
        g5 = grad_desc[:, :, k4:].reshape(nb, n, nr, n_pairs)
        h = grad_desc[:, :, k3:k4].index_select(2, self.tri_of) * self.tri_coef
        ga2m = torch.matmul(torch.cat([h.view(nb, n, nr, n_pairs), g5], 3), pm.transpose(1, 2))
        gouter = torch.matmul(a2m.transpose(1, 2), g5)  # [B, n, 6, P]
        # Gram matrices g_k[a <= b] = A_a . A_b (weighted): cotangent G (symmetric, [nr, nr]
        # per atom) -> (G + G^T) A
        gram = torch.zeros(nb, n, 3, nr * nr, dtype=dt, device=dev).index_copy(
            3, self.pair_flat, grad_desc[:, :, k0:k3].reshape(nb, n, 3, n_pairs))
        gram = gram.view(nb, n, 3, nr, nr)
        gram = gram + gram.transpose(3, 4)
        g_1 = torch.matmul(gram[:, :, 0], am[:, :, 1:4])
        g_2 = torch.matmul(gram[:, :, 1], am[:, :, 4:10] * self.mult2) + ga2m
        g_3 = torch.matmul(gram[:, :, 2], am[:, :, 10:20] * self.mult3)
        # outer products of the pair factors A1_a, A1_c (atom-major [n, 3, P]): [B n, 3, 2P]
        # (first the A1_a, then the A1_c part), then back to the radial channels
        a1 = am[:, :, 1:4]
        x0o = a1.index_select(1, self.p0).transpose(1, 2).unsqueeze(1)  # [n, 1, 3, P]
        x1o = a1.index_select(1, self.p1).transpose(1, 2).unsqueeze(1)
        go = gouter.unsqueeze(3)  # [B, n, 6, 1, P]
        gxo = torch.cat([
            torch.matmul(self.outer_adj_a, (go * x1o).reshape(nb * n, 18, n_pairs)),
            torch.matmul(self.outer_adj_b, (go * x0o).reshape(nb * n, 18, n_pairs))], 2)
        g_1 = g_1 + torch.matmul(gxo, self.pair_scatter.t()).view(nb, n, 3, nr).transpose(2, 3)
        ga = torch.cat([grad_desc[:, :, :nr].unsqueeze(3), g_1, g_2, g_3], 3)  # [B, n, nr, 20]
        # moments A_i = rpad_i @ apad_i (rpad [nr, n, slots], apad [n, slots, 20]); the B
        # cotangents side by side in one product per atom
        n_slots = apad.shape[1]
        n_edges = flat.shape[0]
        gam = ga.transpose(0, 1).contiguous().view(n, nb * nr, 20)  # [n, B nr, 20]
        g_rpad = torch.bmm(gam, apad.transpose(1, 2))  # [n, B nr, slots]
        gam = ga.permute(1, 2, 0, 3).contiguous().view(n, nr, nb * 20)  # [n, nr, B 20]
        g_apad = torch.bmm(rpad.permute(1, 2, 0), gam)  # [n, slots, B 20]
        # slots -> edges, components first: [B, C, E]
        g_rad = g_rpad.view(n, nb * nr, n_slots).transpose(0, 1).reshape(nb * nr, n * n_slots)
        g_rad = g_rad.index_select(1, flat).view(nb, nr, n_edges)
        g_ang = g_apad.view(n * n_slots, nb * 20).index_select(0, flat).t().contiguous()
        g_ang = g_ang.view(nb, 20, n_edges)
        g_r = (g_rad * dradial).sum(1)  # [B, E]
        # angular part: d ang_c / d u_d = sum_m C[10 d + m, c] mono_m, mono = ang[0:10]
        h = torch.matmul(self.ang_deriv.t(), g_ang).view(nb, 3, 10, -1)
        g_u = (h * mono).sum(2)  # [B, 3, E]
        # u = ev / r, r = |ev|
        g_ev = (g_u - (g_u * u).sum(1, keepdim=True) * u) / r + g_r.unsqueeze(1) * u
        g_ev = g_ev.transpose(1, 2)  # [B, E, 3]
        if order.numel() > 0:
            g_ev = torch.zeros_like(g_ev).index_copy(1, order, g_ev)
        return g_ev
