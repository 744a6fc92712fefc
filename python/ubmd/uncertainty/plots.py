"""PNG plots of uncertainty quality: reliability diagram and uncertainty vs |error|.

The package's figure style (:mod:`ubmd.figures`: Agg canvas, no pyplot state).  ``u`` and ``r`` follow the conventions of
:mod:`ubmd.uncertainty.metrics` (``interval="conformal"``: ``u`` is the ``1 - alpha`` half-width;
``"gaussian"``: ``u`` is a standard deviation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import figures as F
from .calibration import validate_pair
from .metrics import coverage, coverage_curve, miscalibration_area, spearman


def plot_reliability(u: Any, r: Any, path: str | Path, alpha: float = 0.05,
                     interval: str = "conformal", title: str | None = None) -> Path:
    """Reliability diagram: observed vs expected coverage of central Gaussian intervals.

    Draws the diagonal (perfect calibration), the observed curve, shades the miscalibration area
    between them and annotates its value and the coverage at ``1 - alpha``.  Returns the path.
    """
    expected, observed = coverage_curve(u, r, alpha, interval)
    area = miscalibration_area(u, r, alpha, interval)
    cov = coverage(u, r, alpha, interval)
    fig, (ax,) = F.new_figure(4.5, 4.5)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="ideal")
    ax.plot(expected, observed, color="C0", lw=2, label="observed")
    ax.fill_between(expected, expected, observed, color="C0", alpha=0.25,
                    label=f"miscalibration area = {area:.3f}")
    ax.plot([1 - alpha], [cov], "o", color="C3", label=f"coverage at {1 - alpha:.2f}: {cov:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("expected coverage (Gaussian central interval)")
    ax.set_ylabel("observed coverage")
    ax.set_title(title or f"reliability (n = {np.size(u)})")
    ax.legend(loc="upper left", fontsize=F.LEGEND_SIZE)
    return F.save(fig, path)


def plot_uncertainty_vs_error(u: Any, r: Any, path: str | Path, unit: str, alpha: float = 0.05,
                              interval: str = "conformal", title: str | None = None) -> Path:
    """Log-log scatter of ``|error|`` against ``u`` with the line ``|error| = u``.

    ``unit`` labels both axes (e.g. ``"eV/atom"`` or ``"eV/Å"``).  Zeros are clipped to a tenth
    of the smallest positive value so they stay visible on log axes.  Coverage at ``1 - alpha``
    and the Spearman correlation are annotated.  Returns the path.
    """
    if not isinstance(unit, str) or not unit:
        raise ValueError("unit must be a non-empty string such as 'eV/atom' or 'eV/Å'")
    u_arr, r_abs = validate_pair(u, r)
    cov = coverage(u_arr, r_abs, alpha, interval)
    rho = spearman(u_arr, r_abs)
    positive = np.concatenate([u_arr[u_arr > 0], r_abs[r_abs > 0]])
    floor = 0.1 * positive.min() if positive.size else 1e-12
    x, y = np.maximum(u_arr, floor), np.maximum(r_abs, floor)
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    lo, hi = lo / 1.5, hi * 1.5
    fig, (ax,) = F.new_figure(4.5, 4.5)
    ax.scatter(x, y, s=6, alpha=0.5, color="C0", edgecolors="none")
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="|error| = u")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"uncertainty u ({unit})")
    ax.set_ylabel(f"|error| ({unit})")
    ax.set_title(title or f"uncertainty vs error (n = {u_arr.size})")
    ax.legend(loc="upper left", fontsize=F.LEGEND_SIZE)
    ax.text(0.97, 0.03, f"coverage at {1 - alpha:.2f}: {cov:.3f}\nSpearman: {rho:.3f}",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=F.LEGEND_SIZE)
    return F.save(fig, path)
