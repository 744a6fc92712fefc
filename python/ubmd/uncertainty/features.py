"""Gradient features of a trained model, per atom (phi_i) and per structure (mean over atoms).

For linear layer l with extended input x~_l and output gradient g_l = dE_i/do_l the per-atom
parameter gradient is g_l (x) x~_l. Feature kinds:

* ``last_layer``: phi_i = g_L (x) x~_L (dimension d_in(L) + 1; the output layer has d_out = 1);
* ``sketch``: phi_i = sum_l (x~_l U_l) * (g_l V_l) / sqrt(K), with fixed Gaussian U_l [d_in+1, K],
  V_l [d_out, K] drawn once from ``seed`` -- a Kronecker-structured random projection of the full
  per-atom gradient that never materialises it;
* ``energies`` (ensembles with ensemble uncertainty): phi_i = the members' atomic energies [M].

Ensembles concatenate their members' features. Everything here is TorchScript-able and keeps the
autograd graph to the edge vectors (bias forces and bias stress are derivatives of these).

The bias needs only the gradient of v . sum_i phi_i for a fixed v = du/dphi_sum. For sketches,
sum_i phi_i . v = sum_l sum_i x~_l,i^T M_l g_l,i with M_l = U_l diag(v_l) V_l^T / sqrt(K), so
:meth:`FeatureModel.atomic_parts` returns the layer inputs and output gradients (graph kept) and
:meth:`FeatureModel.contract` back-propagates through x M g at d_in d_out per atom instead of
K (d_in + d_out) (plus d_in K d_out once per evaluation); the feature sum itself is
diag(U^T (sum_i x~_i g_i^T) V) / sqrt(K). Each layer takes the cheaper route for the atom count
(``FeatureModel.route``: ``auto``; ``atoms`` / ``matrix`` force one).
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

from ..keys import ENSEMBLE_FEATURES, FEATURE_KINDS
from ..model import MLIP
from ..model.mlip import scaled_mm

FEATURE_MAPS = FEATURE_KINDS + (ENSEMBLE_FEATURES,)  # keys.FEATURE_KINDS + "energies" (ensembles)
SKETCH_ROUTES = ("auto", "atoms", "matrix")  # how a sketch layer is contracted (see above)


def matrix_route_cheaper(n: int, d_in: int, d_out: int, k: int) -> bool:
    """True when U diag(v) V^T (d_in K d_out, once) + n d_in d_out multiply-adds beat the
    per-atom projections n K (d_in + d_out)."""
    return d_in * d_out * (k + n) < n * k * (d_in + d_out)


class Sketch(nn.Module):
    """Random projection matrices of one linear layer."""

    def __init__(self, d_in: int, d_out: int, k: int, generator: torch.Generator):
        super().__init__()
        self.register_buffer("u", torch.randn(d_in + 1, k, generator=generator))
        self.register_buffer("v", torch.randn(d_out, k, generator=generator))


class FeatureModel(nn.Module):
    """Members of an ensemble (or one model) with their gradient-feature map."""

    def __init__(self, members: List[MLIP], kind: str = "last_layer", n_sketch: int = 512,
                 seed: int = 0):
        super().__init__()
        if kind not in FEATURE_MAPS:
            raise ValueError(f"unknown feature kind {kind!r}; choose one of {FEATURE_MAPS}")
        if len(members) == 0:
            raise ValueError("need at least one model")
        depths = {len(m.layers) for m in members}
        if len(depths) != 1:
            raise ValueError(f"ensemble members must have the same number of layers, got {sorted(depths)}")
        self.members = nn.ModuleList(members)
        self.kind = kind
        self.n_members = len(members)
        self.cutoff = float(members[0].cutoff)
        self.sketch_norm = 1.0 / math.sqrt(n_sketch)
        sketches: List[nn.Module] = []
        gen = torch.Generator().manual_seed(int(seed) + 7919)
        dtype = members[0].desc_mean.dtype
        for m in members:
            for layer in m.layers:
                sketches.append(Sketch(layer.d_in, layer.d_out, n_sketch, gen).to(dtype))
        self.sketches = nn.ModuleList(sketches if kind == "sketch" else [])
        n_layers = len(members[0].layers)
        self.n_layers = n_layers
        self.n_sketch = int(n_sketch)
        self.route = "auto"
        if kind == "last_layer":
            self.dim = sum(m.layers[n_layers - 1].d_in + 1 for m in members)
        elif kind == "sketch":
            self.dim = n_sketch * len(members)
        else:
            self.dim = len(members)

    def _readouts(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
                  with_features: bool) -> Tuple[Tensor, List[Tensor]]:
        """Member-mean energies [n] and the members' readout parts (graph kept), member after
        member: per linear layer x~_l and g_l (sketch), the last-layer features (last_layer), or
        the member's atomic energies [n, 1] (energies, and whenever ``with_features`` is false)."""
        sp = species[:n_centres]
        energies: List[Tensor] = []
        parts: List[Tensor] = []
        for member in self.members:
            desc = member.descriptor(edge_vec, edge_index, species, n_centres)
            if not with_features or self.kind == "energies":
                e = member.readout(desc, sp)
                parts.append(e.unsqueeze(-1))
            elif self.kind == "last_layer":
                e, phi_last = member.readout_last_layer(desc, sp)
                parts.append(phi_last)
            else:
                e, xs, gs = member.readout_with_grads(desc, sp)
                for layer in range(self.n_layers):
                    parts.append(xs[layer])
                    parts.append(gs[layer])
            energies.append(e)
        baseline = self.members[0].baseline(edge_vec, edge_index, species, n_centres)
        return torch.stack(energies, 0).mean(0) + baseline, parts

    def atomic(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
               with_features: bool) -> Tuple[Tensor, Tensor]:
        """Per-atom energies (member mean) [n] and features [n, dim] (graph kept)."""
        energy, parts = self._readouts(edge_vec, edge_index, species, n_centres, with_features)
        if not with_features:
            return energy, torch.zeros(n_centres, 0, dtype=energy.dtype, device=energy.device)
        if self.kind != "sketch":
            return energy, torch.cat(parts, dim=-1)
        feats: List[Tensor] = []  # one [n, K] block per member, summed over its layers
        for idx, sk in enumerate(self.sketches):
            term = (parts[2 * idx] @ sk.u) * (parts[2 * idx + 1] @ sk.v)
            if idx % self.n_layers == 0:
                feats.append(term)
            else:
                feats[-1] = feats[-1] + term
        return energy, torch.cat(feats, dim=-1) * self.sketch_norm

    def set_route(self, route: str) -> "FeatureModel":
        """How sketched layers are contracted: ``auto`` (cheaper per layer and atom count),
        ``atoms`` or ``matrix`` (forced; for tests). Set before scripting/export."""
        if route not in SKETCH_ROUTES:
            raise ValueError(f"unknown sketch route {route!r}; choose one of {SKETCH_ROUTES}")
        self.route = route
        return self

    def _use_matrix(self, n: int, d_in: int, d_out: int) -> bool:
        if self.route != "auto":
            return self.route == "matrix"
        return matrix_route_cheaper(n, d_in, d_out, self.n_sketch)

    def atomic_parts(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
                     atomic_features: bool) -> Tuple[Tensor, Tensor, Tensor, List[Tensor]]:
        """Per-atom energies [n] (graph kept), the feature sum [dim] and, if ``atomic_features``,
        the per-atom features [n, dim] (both without graph), and ``parts`` (graph kept) from
        which :meth:`contract` builds v . sum_i phi_i."""
        energy, parts = self._readouts(edge_vec, edge_index, species, n_centres, True)
        if self.kind != "sketch":
            phi = torch.cat(parts, dim=-1).detach()
            return energy, phi.sum(0), phi if atomic_features else phi[:, :0], parts
        # parts per layer become (x~ U, g V) on the per-atom route and stay (x~, g) on the matrix
        # route; sums and per-atom features collect one [K] / [n, K] block per member
        sums: List[Tensor] = []
        atoms: List[Tensor] = []
        for idx, sk in enumerate(self.sketches):
            x = parts[2 * idx]
            g = parts[2 * idx + 1]
            term = x[:, :0]
            if not self._use_matrix(n_centres, x.shape[1], g.shape[1]):
                parts[2 * idx] = x @ sk.u
                parts[2 * idx + 1] = g @ sk.v
                term = parts[2 * idx].detach() * parts[2 * idx + 1].detach()
                s = term.sum(0)
            elif atomic_features:
                term = (x.detach() @ sk.u) * (g.detach() @ sk.v)
                s = term.sum(0)
            else:
                s = ((sk.u.t() @ (x.detach().t() @ g.detach())) * sk.v.t()).sum(-1)
            if idx % self.n_layers == 0:
                sums.append(s)
                atoms.append(term)
            else:
                sums[-1] = sums[-1] + s
                if atomic_features:
                    atoms[-1] = atoms[-1] + term
        phi_atoms = torch.cat(atoms, dim=-1) if atomic_features else energy.new_zeros(n_centres, 0)
        return energy, torch.cat(sums) * self.sketch_norm, phi_atoms * self.sketch_norm, parts

    def contract(self, parts: List[Tensor], v: Tensor) -> Tensor:
        """v . sum_i phi_i as a differentiable scalar from :meth:`atomic_parts`' ``parts``."""
        if self.kind != "sketch":
            return (torch.cat(parts, dim=-1).sum(0) * v).sum()
        out = torch.zeros((), dtype=v.dtype, device=v.device)
        k = self.n_sketch
        for idx, sk in enumerate(self.sketches):
            a = parts[2 * idx]
            b = parts[2 * idx + 1]
            vl = v[(idx // self.n_layers) * k:(idx // self.n_layers + 1) * k] * self.sketch_norm
            if self._use_matrix(a.shape[0], sk.u.shape[0], sk.v.shape[0]):
                out = out + ((a @ ((sk.u * vl) @ sk.v.t())) * b).sum()
            else:
                out = out + (a * b * vl).sum()
        return out

    # ------------------------------------------------------------------ one pass, no autograd

    def _sketch_matrices(self) -> Tuple[List[Tensor], List[Tensor]]:
        us: List[Tensor] = []
        vs: List[Tensor] = []
        for sk in self.sketches:
            us.append(sk.u)
            vs.append(sk.v)
        return us, vs

    def atomic_state(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
                     with_features: bool, atomic_features: bool
                     ) -> Tuple[Tensor, Tensor, Tensor, List[Tensor]]:
        """:meth:`atomic_parts` without an autograd graph (run under no_grad): per-atom
        energies [n], the feature sum [dim] (empty without ``with_features``), the per-atom
        features [n, dim] ([n, 0] unless ``atomic_features``) and the state from which
        :meth:`state_gradients` computes the energy gradient and the bias gradient w.r.t. the
        edge vectors in one pass."""
        sp = species[:n_centres]
        sketch = with_features and self.kind == "sketch"
        us, vs = self._sketch_matrices()
        state: List[Tensor] = [torch.tensor([int(with_features), n_centres], dtype=torch.long)]
        energies: List[Tensor] = []
        sums: List[Tensor] = []
        atoms: List[Tensor] = []
        nl = self.n_layers
        idx = 0
        for member in self.members:
            desc, dstate = member.descriptor.forward_state(edge_vec, edge_index, species, n_centres)
            e, rstate = member.readout_state(desc, sp, sketch)
            energies.append(e)
            state += dstate + rstate
            if not with_features:
                pass
            elif self.kind == "energies":
                sums.append(e.sum(0, keepdim=True))
                atoms.append(e.unsqueeze(-1))
            elif self.kind == "last_layer":
                h = rstate[nl - 1]
                factor = 1.0
                bias_factor = 1.0
                for layer in member.layers:
                    factor = layer.in_factor
                    bias_factor = layer.bias_factor
                scl = rstate[3 * nl - 2]  # [n, 1]
                if atomic_features:
                    ones = torch.full((h.shape[0], 1), bias_factor, dtype=h.dtype, device=h.device)
                    phi = torch.cat([h * factor, ones], dim=-1) * scl
                    sums.append(phi.sum(0))
                    atoms.append(phi)
                else:  # sum_i scale_i [f h_i, bf]
                    sums.append(torch.cat([(scl.t() @ h).squeeze(0) * factor,
                                           bias_factor * scl.sum(0)]))
                    atoms.append(h[:, :0])
            else:
                gs = rstate[3 * nl - 1:4 * nl - 1]
                layer_k = 0
                for layer in member.layers:
                    h = rstate[layer_k]
                    g = gs[layer_k]
                    d, f, bf = h.shape[1], layer.in_factor, layer.bias_factor
                    u, v = us[idx], vs[idx]
                    term = h[:, :0]
                    # x~ = [f h, bf]: x~ U = f h U[:d] + bf U[d], never formed
                    if not self._use_matrix(n_centres, d + 1, g.shape[1]):
                        p, q = scaled_mm(h, u[:d], f, u[d] * bf), g @ v
                        state += [p, q]
                        term = p * q
                        s = term.sum(0)
                    else:
                        state += [h[:0, :0], h[:0, :0]]
                        if atomic_features:
                            term = scaled_mm(h, u[:d], f, u[d] * bf) * (g @ v)
                            s = term.sum(0)
                        else:  # diag(U^T (x~^T g) V)
                            xg = torch.cat([torch.addmm(g.new_zeros(1), h.t(), g, beta=0.0, alpha=f),
                                            bf * g.sum(0, keepdim=True)], 0)
                            s = ((u.t() @ xg) * v.t()).sum(-1)
                    if layer_k == 0:
                        sums.append(s)
                        atoms.append(term)
                    else:
                        sums[-1] = sums[-1] + s
                        if atomic_features:
                            atoms[-1] = atoms[-1] + term
                    layer_k += 1
                    idx += 1
        baseline, baseline_grad = self.members[0].baseline_state(edge_vec, edge_index, species,
                                                                 n_centres)
        state.append(baseline_grad)
        energy = torch.stack(energies, 0).mean(0) + baseline
        if not with_features:
            return energy, energy[:0], energy.new_zeros(n_centres, 0), state
        norm = self.sketch_norm if self.kind == "sketch" else 1.0
        phi_sum = torch.cat(sums) * norm
        phi_atoms = torch.cat(atoms, dim=-1) * norm if atomic_features \
            else energy.new_zeros(n_centres, 0)
        return energy, phi_sum, phi_atoms, state

    def energies_and_gradient(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor,
                              n_centres: int) -> Tuple[Tensor, Tensor]:
        """Per-atom energies (member mean + baseline) and the gradient of their sum w.r.t. the
        edge vectors [E, 3], in closed form (see :meth:`MLIP.energies_and_gradient`)."""
        energy, _, _, state = self.atomic_state(edge_vec, edge_index, species, n_centres, False, False)
        return energy, self.state_gradients(state, energy[:0])[0]

    def state_gradients(self, state: List[Tensor], v: Tensor) -> Tensor:
        """Gradients w.r.t. the edge vectors from :meth:`atomic_state`'s state: [1, E, 3] of the
        energy sum when ``v`` is empty, else [2, E, 3]: of the energy sum and of v . sum_i phi_i
        (the feature sum's contraction with v = du/dphi_sum), in one traversal of the model:
        both cotangents go through the readout and the descriptor side by side."""
        with_features = bool(state[0][0] > 0)
        n = int(state[0][1])
        with_bias = v.numel() > 0
        if with_bias and not with_features:
            raise RuntimeError("state_gradients with v needs atomic_state(..., with_features=True)")
        nl = self.n_layers
        sketch = with_features and self.kind == "sketch"
        len_r = 3 * nl - 1 + (2 * nl - 1 if sketch else 0)
        us, vs = self._sketch_matrices()
        c_e = 1.0 / self.n_members
        dtype, device = state[-1].dtype, state[-1].device
        ones = torch.ones(1, n, dtype=dtype, device=device)
        empty = torch.zeros(0, dtype=dtype, device=device)
        pos = 1
        idx = 0
        offset = 0
        m = 0
        total = empty
        for member in self.members:
            dstate = state[pos:pos + 14]
            pos += 14
            rstate = state[pos:pos + len_r]
            pos += len_r
            h_extra: List[Tensor] = [empty for _ in range(nl)]
            o_extra: List[Tensor] = [empty for _ in range(nl - 1)]
            if not with_bias:
                gd = member.readout_vjp(rstate, c_e * ones, h_extra, o_extra, empty)
                if sketch:
                    pos += 2 * nl
            elif self.kind == "energies":
                cot = torch.cat([c_e * ones, v[m] * ones], 0)
                gd = member.readout_vjp(rstate, cot, h_extra, o_extra, empty)
            elif self.kind == "last_layer":
                h = rstate[nl - 1]
                d_last = h.shape[1]
                factor = 1.0
                for layer in member.layers:
                    factor = layer.in_factor
                hx = torch.zeros(2, n, d_last, dtype=dtype, device=device)
                hx[1] = rstate[3 * nl - 2] * (v[offset:offset + d_last] * factor)
                offset += d_last + 1
                h_extra[nl - 1] = hx
                gd = member.readout_vjp(rstate, torch.cat([c_e * ones, 0.0 * ones], 0), h_extra,
                                        o_extra, empty)
            else:
                parts = state[pos:pos + 2 * nl]
                pos += 2 * nl
                vm = v[m * self.n_sketch:(m + 1) * self.n_sketch] * self.sketch_norm
                outs = rstate[nl:2 * nl - 1]
                dsil = rstate[2 * nl - 1:3 * nl - 2]
                gs = rstate[3 * nl - 1:4 * nl - 1]
                ts = rstate[4 * nl - 1:5 * nl - 2]
                # a_l = d(v . phi)/d x~_l (its h part, as h_extra), b_l = d(v . phi)/d g_l
                b_list: List[Tensor] = []
                weights: List[Tensor] = []
                factors: List[float] = []
                layer_k = 0
                for layer in member.layers:
                    weights.append(layer.weight)
                    factors.append(layer.in_factor)
                    u, vv = us[idx], vs[idx]
                    p, q = parts[2 * layer_k], parts[2 * layer_k + 1]
                    h = rstate[layer_k]
                    d, f = h.shape[1], layer.in_factor
                    if p.numel() > 0 or n == 0:
                        h_extra[layer_k] = scaled_mm(q * vm, u[:d].t(), f, empty).unsqueeze(0)
                        b_list.append((p * vm) @ vv.t())
                    else:  # M = U diag(v) V^T, scaled on its narrower side
                        if vv.shape[0] < u.shape[0]:
                            mat = u @ (vm.unsqueeze(1) * vv.t())
                        else:
                            mat = (u * vm) @ vv.t()
                        h_extra[layer_k] = scaled_mm(gs[layer_k], mat[:d].t(), f, empty).unsqueeze(0)
                        b_list.append(scaled_mm(h, mat[:d], f, mat[d] * layer.bias_factor))
                    layer_k += 1
                    idx += 1
                # g_l = t_l silu'(o_l), t_l = f_{l+1} g_{l+1} W_{l+1}: from the first layer up
                g_bar = b_list[0]
                for k in range(nl - 1):
                    sig = torch.sigmoid(outs[k])
                    dd = sig * (1.0 - sig) * (2.0 + outs[k] * (1.0 - 2.0 * sig))  # silu''
                    o_extra[k] = (g_bar * ts[k] * dd).unsqueeze(0)
                    g_bar = b_list[k + 1] + ((g_bar * dsil[k]) @ weights[k + 1].t()) * factors[k + 1]
                gd = member.readout_vjp(rstate, 0.0 * ones, h_extra, o_extra,
                                        (c_e * gs[0]).unsqueeze(0))
                gd = torch.stack([gd[1], gd[0]], 0)  # [energy, bias]
            g = member.descriptor.backward_state(dstate, gd)
            total = g if m == 0 else total + g
            m += 1
        total[0] = total[0] + state[-1]
        return total
