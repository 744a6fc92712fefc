"""Uncertainties from gradient features (posterior, distance) and from ensembles.

Total (structure) uncertainty uses phi(S) = (1/N) sum_i phi_i; atom-based uncertainty uses phi_i
against all training atoms' features, with its own scale factor. Scale a = 1/sqrt(mean ||phi||^2)
over the *training split* only. Calibration constants c (see :mod:`ubmd.uncertainty.calibration`) multiply u.

* posterior (GP, linear kernel, noise s = 1e-2): C = a^2 Phi^T Phi + s^2 I = L L^T,
  phi~ = s a L^{-1} phi, u = c sqrt(||phi~||^2)  (standard deviation, same units as the energy
  per atom once calibrated);
* distance: u = c sqrt(min_n max(||a phi - a phi_n||^2, 1e-8));
* ensemble: u = c sqrt(max(var_m E_m, 1e-8)) / N for structures (features = member energies),
  and c_at * std_m E_i,m per atom.

:class:`UncertaintyHead` holds the fitted state and evaluates u and du/dphi_sum in closed form;
it is TorchScript-able and goes into the model file (the C++ side calls it after the MPI
Allreduce of the feature sums).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from ..keys import UNCERTAINTY_KINDS

U2_FLOOR = 1e-8  # floor on u^2 before the square root (keeps d sqrt finite)
NOISE = 1e-2  # GP noise s
HEAD_KINDS = tuple(k for k in UNCERTAINTY_KINDS if k != "none")  # fitted heads


def feature_scale(phi: Tensor) -> float:
    """a = 1 / sqrt(mean_n ||phi_n||^2) (training features only)."""
    ms = float((phi.double() ** 2).sum(-1).mean())
    if not ms > 0:
        raise ValueError("training features are all zero: cannot fit an uncertainty scale")
    return ms ** -0.5


def posterior_transform(phi: Tensor, scale: float, noise: float = NOISE) -> Tensor:
    """T = s a L^{-1} with L L^T = a^2 Phi^T Phi + s^2 I (float64; escalating jitter on failure)."""
    x = phi.double() * scale
    k = x.shape[1]
    cov = x.T @ x + noise ** 2 * torch.eye(k, dtype=torch.float64)
    jitter = 1e-5 * float(torch.trace(cov)) / k
    for _ in range(20):
        chol, info = torch.linalg.cholesky_ex(cov)
        if int(info) == 0:
            break
        cov = cov + jitter * torch.eye(k, dtype=torch.float64)
        jitter *= 2.0
    else:  # pragma: no cover - pathological input
        raise RuntimeError("Cholesky of the posterior covariance failed even with jitter")
    eye = torch.eye(k, dtype=torch.float64)
    linv = torch.linalg.solve_triangular(chol, eye, upper=False)
    return noise * scale * linv


def reduce_rows(x: Tensor, max_rows: int, seed: int = 0) -> Tensor:
    """Keep at most ``max_rows`` rows by greedy farthest-point (max-dist) selection."""
    if x.shape[0] <= max_rows:
        return x
    g = torch.Generator().manual_seed(seed)
    first = int(torch.randint(x.shape[0], (1,), generator=g))
    chosen = [first]
    d = ((x - x[first]) ** 2).sum(-1)
    for _ in range(max_rows - 1):
        j = int(torch.argmax(d))
        chosen.append(j)
        d = torch.minimum(d, ((x - x[j]) ** 2).sum(-1))
    return x[torch.tensor(chosen)]


class UncertaintyHead(nn.Module):
    """Fitted uncertainty state: u and du/dphi_sum for structures, u_i for atoms."""

    def __init__(self, kind: str, dim: int, scale: float = 1.0, atomic_scale: float = 1.0,
                 transform: Tensor | None = None, atomic_transform: Tensor | None = None,
                 train_features: Tensor | None = None, train_atomic_features: Tensor | None = None,
                 calib_total: float = 1.0, calib_atomic: float = 1.0, chunk: int = 4096):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"unknown uncertainty {kind!r}; choose one of {HEAD_KINDS}")
        self.kind = kind
        self.dim = dim
        self.scale = float(scale)
        self.atomic_scale = float(atomic_scale)
        self.calib_total = float(calib_total)
        self.calib_atomic = float(calib_atomic)
        self.chunk = int(chunk)
        self.u2_floor = U2_FLOOR
        empty = torch.zeros(0, dim, dtype=torch.float64)
        self.register_buffer("transform", transform if transform is not None else torch.zeros(0, 0))
        self.register_buffer("atomic_transform",
                             atomic_transform if atomic_transform is not None else torch.zeros(0, 0))
        self.register_buffer("train_features", train_features if train_features is not None else empty)
        self.register_buffer("train_atomic_features",
                             train_atomic_features if train_atomic_features is not None else empty)

    def raw_total(self, phi: Tensor, n_atoms: Tensor) -> Tensor:
        """Uncalibrated u for structure features phi [B, K] (mean features; member energies for
        ensembles, *total* energies) with atom counts n_atoms [B]. Differentiable."""
        if self.kind == "posterior":
            q = ((phi @ self.transform.T) ** 2).sum(-1)
            return torch.sqrt(torch.clamp(q, min=self.u2_floor))
        if self.kind == "distance":
            return torch.sqrt(torch.clamp(self._min_sq_dist(phi * self.scale, self.train_features),
                                          min=self.u2_floor))
        var = ((phi - phi.mean(-1, keepdim=True)) ** 2).mean(-1)
        return torch.sqrt(torch.clamp(var, min=self.u2_floor)) / n_atoms

    def raw_atomic(self, phi: Tensor) -> Tensor:
        """Uncalibrated per-atom u for per-atom features [n, K]."""
        if self.kind == "posterior":
            q = ((phi @ self.atomic_transform.T) ** 2).sum(-1)
            return torch.sqrt(torch.clamp(q, min=self.u2_floor))
        if self.kind == "distance":
            return torch.sqrt(torch.clamp(
                self._min_sq_dist(phi * self.atomic_scale, self.train_atomic_features), min=self.u2_floor))
        var = ((phi - phi.mean(-1, keepdim=True)) ** 2).mean(-1)
        return torch.sqrt(torch.clamp(var, min=self.u2_floor))

    def _min_sq_dist(self, x: Tensor, ref: Tensor) -> Tensor:
        out = torch.full((x.shape[0],), 1e30, dtype=x.dtype, device=x.device)
        for start in range(0, ref.shape[0], self.chunk):
            r = ref[start:start + self.chunk]
            d = (x * x).sum(-1, keepdim=True) - 2.0 * x @ r.T + (r * r).sum(-1).unsqueeze(0)
            out = torch.minimum(out, d.min(-1).values)
        return out

    def structure_phi(self, phi_sum: Tensor, n_atoms: float) -> Tensor:
        if self.kind == "ensemble":
            return phi_sum
        return phi_sum / n_atoms

    def total_uncertainty(self, phi_sum: Tensor, n_atoms: float) -> Tuple[Tensor, Tensor]:
        """Calibrated u (0-d) and v = du/dphi_sum [K] from the global feature sum (closed form)."""
        phi = self.structure_phi(phi_sum, n_atoms).detach()
        c = self.calib_total
        if self.kind == "posterior":
            t = self.transform
            z = t @ phi
            q = (z * z).sum()
            u = c * torch.sqrt(torch.clamp(q, min=self.u2_floor))
            grad = (t.T @ z) * (c / u) * c if bool(q > self.u2_floor) else torch.zeros_like(phi)
            return u, grad / n_atoms
        if self.kind == "distance":
            x = phi * self.scale
            ref = self.train_features
            d = (x * x).sum() - 2.0 * (ref @ x) + (ref * ref).sum(-1)
            k = int(torch.argmin(d))
            diff = x - ref[k]
            q = (diff * diff).sum()
            u = c * torch.sqrt(torch.clamp(q, min=self.u2_floor))
            grad = diff * (c * c / u) * self.scale if bool(q > self.u2_floor) else torch.zeros_like(phi)
            return u, grad / n_atoms
        m = phi.shape[0]
        dev = phi - phi.mean()
        var = (dev * dev).mean()
        u = c * torch.sqrt(torch.clamp(var, min=self.u2_floor)) / n_atoms
        grad = dev / m * (c * c / (u * n_atoms * n_atoms)) if bool(var > self.u2_floor) else torch.zeros_like(phi)
        return u, grad

    def atomic_uncertainty(self, features: Tensor) -> Tensor:
        """Calibrated per-atom uncertainties [n] (no graph)."""
        return self.calib_atomic * self.raw_atomic(features.detach())
