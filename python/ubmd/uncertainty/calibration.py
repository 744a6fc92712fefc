"""Calibration of raw uncertainties with one scalar constant: calibrated ``u = c * u_raw``.

Model-agnostic: every function works on arrays of raw uncertainties ``u_raw`` (>= 0) and
residuals ``r`` (signed or absolute; only ``|r|`` is used) of the same shape, given as numpy
arrays, torch tensors or sequences.  Units: ``u_raw`` and ``r`` must share the same unit, e.g.
eV/atom for total-energy uncertainties (residual ``|E_ref - E_pred| / N``) or eV/Å for atomic
uncertainties (residual = RMS over xyz of the force error of one atom); the constant ``c`` is
then dimensionless whenever ``u_raw`` already carries that unit.

Methods (``METHODS``), see the paper's method (docs/method.md):

``"conformal"`` (default, inductive conformal prediction)
    Scores ``a_n = (|r_n| + eps) / (u_n + eps)`` with ``eps = 1e-8``;
    ``q = min(1, ceil((n + 1)(1 - alpha)) / n)``; ``c = quantile(a, q)`` with ``'higher'``
    interpolation, i.e. an actual order statistic at or above the interpolation point, never a
    value interpolated below it.  This is what makes the finite-sample guarantee hold: for a fresh
    exchangeable point, ``P(|r| <= c * u) >= 1 - alpha`` (up to the ``eps`` regularisation).
    ``q`` is clipped to 1 (then ``c`` is the largest score and the guarantee is only
    ``n / (n + 1)``), which happens when ``n < (1 - alpha) / alpha``.
``"max_likelihood"``
    ``c = sqrt(mean(r^2 / u^2))``: the maximum-likelihood scale for ``r ~ N(0, (c u)^2)``.
``"log_regression"``
    ``c = exp(mean(log|r| - log u))``: the geometric mean of ``|r| / u`` (least squares on
    ``log|r| = log c + log u``).  For Gaussian residuals ``r ~ N(0, (c u)^2)`` this estimates
    ``c * exp(-(gamma_E + ln 2) / 2) ~= 0.530 c`` (it calibrates ``u`` to the typical, not the
    root-mean-square, error).  Zeros are guarded with the same ``eps``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..keys import CALIBRATION_METHODS

METHODS = CALIBRATION_METHODS
EPS = 1e-8  # regularisation of scores / logs, in the unit of u and r


def as_array(x: Any, name: str) -> np.ndarray:
    """Return ``x`` (numpy array, torch tensor, scalar or sequence) as a float64 numpy array.

    Torch tensors are detached and moved to the CPU.  Raises ``TypeError`` for non-numeric input.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array or tensor, got {type(x).__name__}") from exc
    return arr


def validate_pair(u: Any, r: Any, u_name: str = "u", r_name: str = "residuals"):
    """Check and flatten a pair (uncertainties, residuals); return ``(u, |r|)`` as 1-D float64.

    Raises ``ValueError`` for a shape mismatch, empty input, NaN/inf values or negative ``u``.
    """
    u_arr, r_arr = as_array(u, u_name), as_array(r, r_name)
    if u_arr.shape != r_arr.shape:
        raise ValueError(
            f"{u_name} and {r_name} must have the same shape, got {u_arr.shape} and {r_arr.shape}"
        )
    if u_arr.size == 0:
        raise ValueError(f"{u_name} and {r_name} are empty: need at least one (u, r) pair")
    for arr, name in ((u_arr, u_name), (r_arr, r_name)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf), "
                f"first at flat index {int(np.flatnonzero(bad)[0])}"
            )
    if (u_arr < 0).any():
        raise ValueError(
            f"{u_name} must be >= 0 (it is a standard deviation), found min {u_arr.min():.6g}"
        )
    return u_arr.ravel(), np.abs(r_arr).ravel()


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float after checking 0 < alpha < 1."""
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return alpha


def conformal_quantile_level(n: int, alpha: float) -> float:
    """The quantile level ``q = min(1, ceil((n + 1)(1 - alpha)) / n)`` for ``n`` scores."""
    # round before ceil so that e.g. (19 + 1) * 0.95 = 19.000000000000004 gives 19, not 20
    k = math.ceil(round((n + 1) * (1.0 - alpha), 9))
    return min(1.0, k / n)


def fit_calibration(u_raw: Any, residuals: Any, method: str = "conformal", alpha: float = 0.05) -> float:
    """Fit the calibration constant ``c`` (calibrated ``u = c * u_raw``).

    Args:
        u_raw: raw uncertainties (>= 0), any shape; same unit as ``residuals``.
        residuals: residuals (signed or absolute), same shape as ``u_raw``.
        method: one of ``METHODS`` (see the module docstring).
        alpha: miscoverage level of the conformal method (target coverage ``1 - alpha``);
            ignored by the other methods but still validated.

    Returns:
        The constant ``c`` as a positive Python float.
    """
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; valid methods: {', '.join(METHODS)}")
    alpha = check_alpha(alpha)
    u, r = validate_pair(u_raw, residuals, "u_raw", "residuals")
    if method == "conformal":
        scores = (r + EPS) / (u + EPS)
        q = conformal_quantile_level(scores.size, alpha)
        return float(np.quantile(scores, q, method="higher"))
    if method == "max_likelihood":
        return float(np.sqrt(np.mean(((r + EPS) / (u + EPS)) ** 2)))
    return float(np.exp(np.mean(np.log(r + EPS) - np.log(u + EPS))))


def atomic_residuals(forces_pred: Any, forces_ref: Any) -> np.ndarray:
    """Per-atom force residual: RMS over x, y, z of ``F_pred - F_ref`` (eV/Å), shape ``[N]``."""
    fp, fr = as_array(forces_pred, "forces_pred"), as_array(forces_ref, "forces_ref")
    if fp.shape != fr.shape or fp.ndim != 2 or fp.shape[1] != 3:
        raise ValueError(
            f"forces_pred and forces_ref must both have shape [N, 3], got {fp.shape} and {fr.shape}"
        )
    return np.sqrt(np.mean((fp - fr) ** 2, axis=1))


def total_residuals(energy_pred: Any, energy_ref: Any, n_atoms: Any) -> np.ndarray:
    """Per-structure energy residual ``|E_pred - E_ref| / N`` (eV/atom), shape ``[B]``."""
    ep, er = as_array(energy_pred, "energy_pred").ravel(), as_array(energy_ref, "energy_ref").ravel()
    n = as_array(n_atoms, "n_atoms").ravel()
    if not (ep.shape == er.shape == n.shape):
        raise ValueError(
            f"energy_pred, energy_ref and n_atoms must have the same length [B], "
            f"got {ep.shape}, {er.shape} and {n.shape}"
        )
    if (n <= 0).any():
        raise ValueError(f"n_atoms must be positive, found min {n.min():.6g}")
    return np.abs(ep - er) / n


@dataclass
class Calibration:
    """Calibration constants of one model, saved as JSON next to the model file.

    Attributes:
        total: constant for the total (per-structure, eV/atom) uncertainty.
        atomic: constant for the per-atom (eV/Å) uncertainty, or ``None`` if not fitted.
        method: one of ``METHODS``.
        alpha: miscoverage level used (target coverage ``1 - alpha``).
        n_total: number of structures the total constant was fitted on.
        n_atomic: number of atoms the atomic constant was fitted on (0 if not fitted).
    """

    total: float = 1.0
    atomic: float | None = None
    method: str = "conformal"
    alpha: float = 0.05
    n_total: int = 0
    n_atomic: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method {self.method!r}; valid methods: {', '.join(METHODS)}")
        check_alpha(self.alpha)
        for name in ("total", "atomic"):
            value = getattr(self, name)
            if value is None and name == "atomic":
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"Calibration.{name} must be a finite positive number, got {value!r}")
            setattr(self, name, float(value))
        self.alpha, self.n_total, self.n_atomic = float(self.alpha), int(self.n_total), int(self.n_atomic)

    @classmethod
    def fit(cls, u_total: Any, r_total: Any, u_atomic: Any = None, r_atomic: Any = None,
            method: str = "conformal", alpha: float = 0.05) -> "Calibration":
        """Fit the total constant (and the atomic one when ``u_atomic``/``r_atomic`` are given)."""
        total = fit_calibration(u_total, r_total, method, alpha)
        atomic, n_atomic = None, 0
        if (u_atomic is None) != (r_atomic is None):
            raise ValueError("give both u_atomic and r_atomic, or neither")
        if u_atomic is not None:
            atomic = fit_calibration(u_atomic, r_atomic, method, alpha)
            n_atomic = as_array(u_atomic, "u_atomic").size
        return cls(total, atomic, method, alpha, as_array(u_total, "u_total").size, n_atomic)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        """Inverse of :meth:`to_dict`; rejects unknown keys with the list of valid ones."""
        valid = tuple(cls.__dataclass_fields__)
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown Calibration keys {unknown}; valid keys: {', '.join(valid)}")
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        """Read a calibration written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
