"""Parity plots of a model on labelled structures: predicted against reference energy per atom
(eV/atom), force components (eV/Å) and stress components (GPa), with the line y = x and the
RMSE and MAE of each panel (:func:`plot_parity`). Dense panels (many force components) are
drawn as 2-D histograms with a colour bar of points per bin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.units import GPa

from .. import figures as F

#: above this many points a panel is a 2-D histogram instead of a scatter plot
DENSE = 4000


def parity_panel(fig, ax, reference, predicted, quantity: str, unit: str) -> None:
    """One parity panel: ``predicted`` against ``reference`` (same unit), y = x, RMSE and MAE."""
    x, y = np.asarray(reference, dtype=float).ravel(), np.asarray(predicted, dtype=float).ravel()
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.05
    lo, hi = lo - pad, hi + pad
    if x.size > DENSE:
        hb = ax.hexbin(x, y, gridsize=60, bins="log", mincnt=1, cmap="viridis",
                       extent=(lo, hi, lo, hi))
        bar = fig.colorbar(hb, ax=ax, label="points per bin")
        bar.ax.tick_params(labelsize=F.LEGEND_SIZE)
    else:
        ax.scatter(x, y, s=8, alpha=0.6, color="C0", edgecolors="none", rasterized=True)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"reference {quantity} ({unit})")
    ax.set_ylabel(f"predicted {quantity} ({unit})")
    err = y - x
    ax.text(0.97, 0.03, f"RMSE {np.sqrt(np.mean(err ** 2)):.3g} {unit}\n"
                        f"MAE {np.mean(np.abs(err)):.3g} {unit}\nn = {x.size}",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=F.LEGEND_SIZE)
    ax.legend(loc="upper left", fontsize=F.LEGEND_SIZE)


def plot_parity(rows: list[dict], labels: list[dict], path: str | Path) -> Path | None:
    """Parity panels of the quantities that have labels. ``rows``: per structure ``energy``
    (eV), ``forces`` ([n, 3] eV/Å), ``stress`` (3x3 eV/Å^3 or None), ``n`` (atoms);
    ``labels``: per structure ``energy``, ``forces``, ``stress`` (None where absent). Returns
    None when nothing is labelled."""
    panels = []
    e = [(lab["energy"] / r["n"], r["energy"] / r["n"]) for r, lab in zip(rows, labels)
         if lab["energy"] is not None]
    if e:
        panels.append(("energy", "eV/atom", *np.array(e).T))
    f = [(np.asarray(lab["forces"]), r["forces"]) for r, lab in zip(rows, labels)
         if lab["forces"] is not None]
    if f:
        panels.append(("force component", "eV/Å", np.concatenate([a.ravel() for a, _ in f]),
                       np.concatenate([b.ravel() for _, b in f])))
    s = [(np.asarray(lab["stress"]) / GPa, r["stress"] / GPa) for r, lab in zip(rows, labels)
         if lab["stress"] is not None and r["stress"] is not None]
    if s:
        panels.append(("stress component", "GPa", np.concatenate([a.ravel() for a, _ in s]),
                       np.concatenate([b.ravel() for _, b in s])))
    if not panels:
        return None
    fig, axes = F.new_figure(4.2, 4.0, n_cols=len(panels))
    for ax, (quantity, unit, ref, pred) in zip(axes, panels):
        parity_panel(fig, ax, ref, pred, quantity, unit)
    fig.suptitle(f"model against reference ({len(rows)} structures)", fontsize=10)
    return F.save(fig, path)
