"""Quality metrics of (calibrated) uncertainties on held-out data.

All functions take uncertainties ``u`` (>= 0) and residuals ``r`` (signed or absolute) of the same
shape and unit (eV/atom or eV/Å), as numpy arrays or torch tensors.

How ``u`` is read is set by ``interval``:

``"conformal"`` (default)
    ``u`` is a conformally calibrated uncertainty, i.e. the half-width of the ``1 - alpha``
    interval: the calibration constant already is the ``1 - alpha`` quantile of ``|r| / u_raw``,
    so the natural coverage check is ``|r| <= u``.  For the Gaussian-based metrics (coverage curve,
    miscalibration area, NLL) the implied standard deviation is ``sigma = u / z`` with
    ``z = Phi^-1(1 - alpha / 2)`` (the Gaussian whose central ``1 - alpha`` interval is ``±u``).
``"gaussian"``
    ``u`` is a standard deviation (e.g. after maximum-likelihood calibration): coverage checks
    ``|r| <= z u`` and ``sigma = u``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

from .calibration import check_alpha, validate_pair

INTERVALS = ("conformal", "gaussian")


def _check_interval(interval: str) -> str:
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; valid intervals: {', '.join(INTERVALS)}")
    return interval


def gaussian_std(u: Any, alpha: float = 0.05, interval: str = "conformal") -> np.ndarray:
    """Standard deviation implied by ``u`` under a Gaussian assumption (see module docstring)."""
    _check_interval(interval)
    z = stats.norm.ppf(1.0 - check_alpha(alpha) / 2.0)
    u_arr = np.asarray(u, dtype=np.float64)
    return u_arr / z if interval == "conformal" else u_arr


def coverage(u: Any, r: Any, alpha: float = 0.05, interval: str = "conformal") -> float:
    """Empirical coverage: the fraction of points whose ``|r|`` lies inside the ``1 - alpha`` interval.

    ``interval="conformal"``: ``|r| <= u``; ``interval="gaussian"``: ``|r| <= z u`` with
    ``z = Phi^-1(1 - alpha / 2)``.  Well calibrated: coverage ~= ``1 - alpha``.
    """
    u_arr, r_abs = validate_pair(u, r)
    alpha = check_alpha(alpha)
    z = 1.0 if _check_interval(interval) == "conformal" else stats.norm.ppf(1.0 - alpha / 2.0)
    return float(np.mean(r_abs <= z * u_arr))


def coverage_curve(u: Any, r: Any, alpha: float = 0.05, interval: str = "conformal",
                   n_levels: int = 201):
    """Observed vs expected coverage of central Gaussian intervals, over confidence levels.

    For each expected level ``p`` on a uniform grid of ``[0, 1]`` the observed coverage is the
    fraction of points with ``|r| <= Phi^-1((1 + p) / 2) * sigma``, ``sigma`` from
    :func:`gaussian_std`.  Returns ``(expected, observed)``, two arrays of length ``n_levels``.
    """
    u_arr, r_abs = validate_pair(u, r)
    if n_levels < 2:
        raise ValueError(f"n_levels must be >= 2, got {n_levels}")
    sigma = gaussian_std(u_arr, alpha, interval)
    expected = np.linspace(0.0, 1.0, int(n_levels))
    with np.errstate(divide="ignore", invalid="ignore"):
        # standardised errors; 0/0 (exact prediction with zero uncertainty) counts as inside
        t = np.where(r_abs == 0.0, 0.0, r_abs / sigma)
    t_sorted = np.sort(t)
    half_width = stats.norm.ppf((1.0 + expected) / 2.0)  # 0 at p = 0, inf at p = 1
    observed = np.searchsorted(t_sorted, half_width, side="right") / t_sorted.size
    return expected, observed


def miscalibration_area(u: Any, r: Any, alpha: float = 0.05, interval: str = "conformal",
                        signed: bool = False, n_levels: int = 201) -> float:
    """Area between the observed and the expected coverage curve (trapezoidal rule over ``p``).

    Like uncertainty-toolbox's miscalibration area: 0 for perfectly calibrated Gaussian errors,
    at most 0.5.  ``signed=True`` integrates ``observed - expected`` instead of its absolute
    value: positive = underconfident (``u`` too large), negative = overconfident (``u`` too small).
    """
    expected, observed = coverage_curve(u, r, alpha, interval, n_levels)
    diff = observed - expected
    y = diff if signed else np.abs(diff)
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(expected)))


def spearman(u: Any, r: Any) -> float:
    """Spearman rank correlation between ``u`` and ``|r|``; NaN if either is constant."""
    u_arr, r_abs = validate_pair(u, r)
    if u_arr.size < 2 or np.all(u_arr == u_arr[0]) or np.all(r_abs == r_abs[0]):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(u_arr, r_abs).statistic)


def gaussian_nll(u: Any, r: Any, alpha: float = 0.05, interval: str = "conformal") -> float:
    """Mean negative log-likelihood of ``r`` under ``N(0, sigma^2)``, ``sigma`` from :func:`gaussian_std`.

    ``NLL = mean(0.5 log(2 pi sigma^2) + r^2 / (2 sigma^2))`` (nats; depends on the unit of r).
    Requires ``u > 0`` everywhere.
    """
    u_arr, r_abs = validate_pair(u, r)
    if (u_arr <= 0).any():
        raise ValueError("gaussian_nll needs u > 0 everywhere (a zero std has no finite likelihood)")
    sigma = gaussian_std(u_arr, alpha, interval)
    return float(np.mean(0.5 * np.log(2.0 * math.pi * sigma**2) + r_abs**2 / (2.0 * sigma**2)))


def summary(u: Any, r: Any, alpha: float = 0.05, interval: str = "conformal") -> dict:
    """All metrics in one JSON-serialisable dict of Python floats/ints/strings.

    Keys: ``n``, ``alpha``, ``interval``, ``target_coverage`` (= 1 - alpha), ``coverage``,
    ``miscalibration_area``, ``signed_miscalibration_area``, ``spearman``, ``nll`` (NaN if some
    ``u`` is 0), ``rmse`` (RMS of r), ``mae``, ``rmu`` (RMS of u).
    """
    u_arr, r_abs = validate_pair(u, r)
    alpha = check_alpha(alpha)
    _check_interval(interval)
    nll = gaussian_nll(u_arr, r_abs, alpha, interval) if (u_arr > 0).all() else float("nan")
    return {
        "n": int(u_arr.size),
        "alpha": alpha,
        "interval": interval,
        "target_coverage": 1.0 - alpha,
        "coverage": coverage(u_arr, r_abs, alpha, interval),
        "miscalibration_area": miscalibration_area(u_arr, r_abs, alpha, interval),
        "signed_miscalibration_area": miscalibration_area(u_arr, r_abs, alpha, interval, signed=True),
        "spearman": spearman(u_arr, r_abs),
        "nll": nll,
        "rmse": float(np.sqrt(np.mean(r_abs**2))),
        "mae": float(np.mean(r_abs)),
        "rmu": float(np.sqrt(np.mean(u_arr**2))),
    }
