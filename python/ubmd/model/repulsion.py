"""A short-range repulsive pair baseline (ZBL screened nuclear repulsion), switched off before the
distances the training data cover.

Without it, an MLIP knows nothing about atoms closer than its data: two atoms on one site can get
an energy *lower* than at 1 Å, and a biased walker (pushed toward high uncertainty) can run into
that hole. The baseline makes every pair repulsive at short range, so MD stays physical where there
are no data, and is exactly zero where there are:

    E_i += 1/2 sum_j V(r_ij) S(r_ij),   V(r) = Z_i Z_j e^2 / (4 pi eps0 r) phi(r / a),
    a = 0.46850 / (Z_i^0.23 + Z_j^0.23) Å,
    phi(x) = 0.18175 e^(-3.19980 x) + 0.50986 e^(-0.94229 x) + 0.28022 e^(-0.40290 x)
             + 0.02817 e^(-0.20162 x)    (Ziegler-Biersack-Littmark universal potential)

with a quintic switch S = 1 below r_in = r_out / 2 and 0 above r_out = ``range_factor`` x (R_i + R_j)
(covalent radii, ``ase.data.covalent_radii``; ``range_factor`` 0.75 by default: 0.80 Å for C-H, 1.14 Å
for C-C, 0.47 Å for H-H, well below bond lengths). V and S both fall with r, so the baseline is
repulsive everywhere and C^2 at r_out. It has no parameters: training fits the MLIP to the
labels minus nothing where the data are, and it goes into the model file with the MLIP, so the
LAMMPS pair style uses it as well (it is part of the per-atom energies the model returns).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

COULOMB = 14.399645  # e^2 / (4 pi eps0), eV Å
ZBL_LENGTH = 0.46850  # Å
ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)
DEFAULT_RANGE = 0.75


class PairRepulsion(nn.Module):
    """ZBL repulsion between every pair of species of a model, switched off beyond
    ``range_factor`` x the sum of covalent radii (module docstring)."""

    def __init__(self, atomic_numbers: List[int], range_factor: float = DEFAULT_RANGE):
        super().__init__()
        from ase.data import covalent_radii

        if not range_factor > 0:
            raise ValueError(f"repulsion range must be > 0, got {range_factor}")
        z = torch.tensor([float(x) for x in atomic_numbers], dtype=torch.float64)
        radii = torch.tensor([float(covalent_radii[int(x)]) for x in atomic_numbers],
                             dtype=torch.float64)
        self.n_species = len(atomic_numbers)
        self.range_factor = float(range_factor)
        self.register_buffer("zz", (COULOMB * z[:, None] * z[None, :]).reshape(-1))
        self.register_buffer("inv_a", ((z[:, None] ** 0.23 + z[None, :] ** 0.23)
                                       / ZBL_LENGTH).reshape(-1))
        r_out = (self.range_factor * (radii[:, None] + radii[None, :])).reshape(-1)
        self.register_buffer("r_out", r_out)
        self.register_buffer("r_in", 0.5 * r_out)
        self.r_max = float(r_out.max())

    def pair_energy(self, r: Tensor, pair: Tensor) -> Tensor:
        """V(r) S(r) (eV) of edges of length ``r`` (Å) between species pairs ``pair`` (i S + j)."""
        x = r * self.inv_a[pair]
        # ZBL_C, ZBL_D written out (TorchScript takes no module-level tuples)
        phi = (0.18175 * torch.exp(-3.19980 * x) + 0.50986 * torch.exp(-0.94229 * x)
               + 0.28022 * torch.exp(-0.40290 * x) + 0.02817 * torch.exp(-0.20162 * x))
        r_in, r_out = self.r_in[pair], self.r_out[pair]
        t = torch.clamp((r - r_in) / (r_out - r_in), 0.0, 1.0)
        switch = 1.0 - t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)
        return self.zz[pair] / r * phi * switch

    def _close(self, r2: Tensor, edge_index: Tensor, species: Tensor) -> Tensor:
        """Indices of the edges inside their pair's r_out (all others have V S = 0 exactly)."""
        close = torch.nonzero(r2 < self.r_max * self.r_max).squeeze(1)
        if close.numel() == 0:
            return close
        pair = (species.index_select(0, edge_index[0].index_select(0, close)) * self.n_species
                + species.index_select(0, edge_index[1].index_select(0, close)))
        r_out = self.r_out.index_select(0, pair)
        return close.index_select(0, torch.nonzero(r2.index_select(0, close) < r_out * r_out).squeeze(1))

    def pair_energy_derivative(self, r: Tensor, pair: Tensor) -> Tensor:
        """d(V S)/dr (eV/Å) of :meth:`pair_energy`, in closed form."""
        inv_a = self.inv_a[pair]
        x = r * inv_a
        e1, e2 = torch.exp(-3.19980 * x), torch.exp(-0.94229 * x)
        e3, e4 = torch.exp(-0.40290 * x), torch.exp(-0.20162 * x)
        phi = 0.18175 * e1 + 0.50986 * e2 + 0.28022 * e3 + 0.02817 * e4
        dphi = -(0.18175 * 3.19980 * e1 + 0.50986 * 0.94229 * e2 + 0.28022 * 0.40290 * e3
                 + 0.02817 * 0.20162 * e4) * inv_a
        r_in, r_out = self.r_in[pair], self.r_out[pair]
        width = r_out - r_in
        t_raw = (r - r_in) / width
        t = torch.clamp(t_raw, 0.0, 1.0)
        switch = 1.0 - t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)
        inside = (t_raw > 0.0) & (t_raw < 1.0)
        dswitch = torch.where(inside, -30.0 * t * t * (1.0 - t) * (1.0 - t) / width,
                              torch.zeros_like(t))
        zz = self.zz[pair]
        return zz * ((dphi * switch + phi * dswitch) / r - phi * switch / (r * r))

    @torch.jit.export
    def energy_and_gradient(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor,
                            n_centres: int) -> Tuple[Tensor, Tensor]:
        """Per-centre energies [n_centres] and the gradient of their sum w.r.t. the edge
        vectors [E, 3], without autograd (the model file's one-pass path)."""
        out = torch.zeros(n_centres, dtype=edge_vec.dtype, device=edge_vec.device)
        grad = torch.zeros_like(edge_vec)
        if edge_vec.shape[0] == 0:
            return out, grad
        r2 = (edge_vec * edge_vec).sum(-1)
        close = self._close(r2, edge_index, species)
        if close.numel() == 0:
            return out, grad
        i = edge_index[0].index_select(0, close)
        j = edge_index[1].index_select(0, close)
        r = torch.sqrt(r2.index_select(0, close) + 1e-30)
        pair = species.index_select(0, i) * self.n_species + species.index_select(0, j)
        out = out.index_add(0, i, 0.5 * self.pair_energy(r, pair))
        de = 0.5 * self.pair_energy_derivative(r, pair) / r
        grad = grad.index_copy(0, close, edge_vec.index_select(0, close) * de.unsqueeze(1))
        return out, grad

    def forward(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor,
                n_centres: int) -> Tensor:
        """Per-centre energies [n_centres] (eV): half of each pair term on each end (every pair
        appears as the edges i -> j and j -> i)."""
        out = torch.zeros(n_centres, dtype=edge_vec.dtype, device=edge_vec.device)
        if edge_vec.shape[0] == 0:
            return out
        r2 = (edge_vec * edge_vec).sum(-1)
        close = self._close(r2, edge_index, species)
        if close.numel() == 0:
            return out
        i = edge_index[0].index_select(0, close)
        j = edge_index[1].index_select(0, close)
        r = torch.sqrt(r2.index_select(0, close) + 1e-30)
        pair = species.index_select(0, i) * self.n_species + species.index_select(0, j)
        return out.index_add(0, i, 0.5 * self.pair_energy(r, pair))
