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
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

from .model import MLIP

FEATURE_KINDS = ("last_layer", "sketch", "energies")


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
        if kind not in FEATURE_KINDS:
            raise ValueError(f"unknown feature kind {kind!r}; choose one of {FEATURE_KINDS}")
        if len(members) == 0:
            raise ValueError("need at least one model")
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
        if kind == "last_layer":
            self.dim = sum(m.layers[n_layers - 1].d_in + 1 for m in members)
        elif kind == "sketch":
            self.dim = n_sketch * len(members)
        else:
            self.dim = len(members)

    def atomic(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int,
               with_features: bool) -> Tuple[Tensor, Tensor]:
        """Per-atom energies (member mean) [n] and features [n, dim] (graph kept)."""
        sp = species[:n_centres]
        energies: List[Tensor] = []
        feats: List[Tensor] = []
        for mi, member in enumerate(self.members):
            desc = member.descriptor(edge_vec, edge_index, species, n_centres)
            if not with_features or self.kind == "energies":
                e = member.readout(desc, sp)
                energies.append(e)
                feats.append(e.unsqueeze(-1))
            elif self.kind == "last_layer":
                e, phi_last = member.readout_last_layer(desc, sp)
                energies.append(e)
                feats.append(phi_last)
            else:
                e, xs, gs = member.readout_with_grads(desc, sp)
                energies.append(e)
                phi = torch.zeros(n_centres, 1, dtype=e.dtype, device=e.device)
                first = True
                for k, sk in enumerate(self.sketches):
                    if k // self.n_layers == mi:
                        layer = k % self.n_layers
                        term = (xs[layer] @ sk.u) * (gs[layer] @ sk.v)
                        phi = term if first else phi + term
                        first = False
                feats.append(phi * self.sketch_norm)
        energy = torch.stack(energies, 0).mean(0)
        if not with_features:
            return energy, torch.zeros(n_centres, 0, dtype=energy.dtype, device=energy.device)
        return energy, torch.cat(feats, dim=-1)
