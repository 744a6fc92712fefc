"""PNG plots of exploration analyses (the package's figure style: :mod:`ubmd.figures`).

Every function takes already computed arrays/dicts, writes one PNG and returns its path. Axis
labels carry units (:attr:`ubmd.analysis.cvs.CV.label`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from .. import figures as F


def _title(ax, text: str | None, width: int = 60) -> None:
    """A title wrapped to ``width`` characters (a long file name or CV spec is not cut off)."""
    if text:
        ax.set_title("\n".join(textwrap.wrap(text, width)), fontsize=F.TITLE_SIZE)


def plot_coverage(points_by_walker: dict, occupancies: dict, fractions: dict, ranges, labels, path) -> Path:
    """Scatter of 2-D CV points per walker (coloured by walker, with a legend for up to 12
    walkers and a colour bar beyond) plus one panel of visited cells per grid level.

    ``occupancies``/``fractions`` map level k to a boolean [2^k, 2^k] grid and its fraction.
    """
    levels = sorted(occupancies)
    fig = F.blank_figure(5.2 + 2.3 * len(levels), 4.6)
    grid = fig.add_gridspec(1, 1 + len(levels), width_ratios=[2.2] + [1] * len(levels))
    ax = fig.add_subplot(grid[0, 0])
    F.style_axes(ax)
    names = list(points_by_walker)
    many = len(names) > 12
    norm, cmap = (F.colour_key(fig, ax, range(len(names)), "walker", integer=True)
                  if many else (None, None))
    for k, (name, pts) in enumerate(points_by_walker.items()):
        pts = np.asarray(pts).reshape(-1, 2)
        colour = cmap(norm(k)) if many else f"C{k % 10}"
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.6, color=colour, rasterized=True,
                   label=None if many else str(name))
    ax.set_xlim(*ranges[0])
    ax.set_ylim(*ranges[1])
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_aspect("equal", adjustable="box")
    mean = float(np.mean([fractions[k] for k in levels]))
    _title(ax, f"coverage {mean:.3f} (mean over {len(levels)} grid levels)")
    if not many and len(names) > 1:
        ax.legend(fontsize=F.LEGEND_SIZE - 1, markerscale=3, loc="upper right",
                  title="walker", title_fontsize=F.LEGEND_SIZE - 1)
    extent = [ranges[0][0], ranges[0][1], ranges[1][0], ranges[1][1]]
    for n, k in enumerate(levels):
        sub = fig.add_subplot(grid[0, 1 + n])
        sub.imshow(occupancies[k].T, origin="lower", extent=extent, cmap="Blues", vmin=0, vmax=1.4,
                   interpolation="nearest", aspect="equal")
        sub.set_title(f"{2**k}x{2**k} cells: {fractions[k]:.3f}\n(dark: visited)",
                      fontsize=F.LEGEND_SIZE)
        sub.tick_params(labelsize=F.LEGEND_SIZE - 2)
    return F.save(fig, path)


def plot_acf(lags, mean, std, path, models: dict | None = None, xlabel: str = "lag (frames)",
             title: str | None = None, runs=None) -> Path:
    """ACF mean +- std over runs (shaded), optional single runs and model curves {label: acf}."""
    fig, (ax,) = F.new_figure(5.8, 4.2)
    lags = np.asarray(lags)
    if runs is not None:
        for k, curve in enumerate(runs):
            ax.plot(lags, curve, color="0.75", lw=0.6, label="single runs" if k == 0 else None)
    ax.plot(lags, mean, color="C0", lw=1.8, label="mean over runs")
    ax.fill_between(lags, mean - std, mean + std, color="C0", alpha=0.25, label="± std over runs")
    for n, (label, curve) in enumerate((models or {}).items()):
        ax.plot(lags[: len(curve)], curve, ls="--", color=f"C{n + 1}", label=label)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalised autocorrelation")
    _title(ax, title)
    ax.legend(fontsize=F.LEGEND_SIZE)
    return F.save(fig, path)


def plot_histograms(hist: dict, xlabel: str, path, title: str | None = None,
                    unit: str | None = None) -> Path:
    """Overlaid step histograms (densities) from :func:`shared_histograms`; ``unit``: that of
    the x values (the density is per unit of x)."""
    fig, (ax,) = F.new_figure(5.8, 4.2)
    edges = np.asarray(hist["edges"])
    for label, h in hist["campaigns"].items():
        ax.stairs(h["density"], edges, label=f"{label} (n = {h['n']})", fill=False, lw=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"probability density (1/{unit})" if unit else "probability density")
    _title(ax, title)
    ax.legend(fontsize=F.LEGEND_SIZE)
    return F.save(fig, path)


def plot_traces(time, series: dict, path, xlabel: str = "frame", title: str | None = None) -> Path:
    """One panel per CV: {axis label: values} against ``time``; y labels aligned and wrapped."""
    fig, axes = F.new_figure(6.4, 1.9, n_rows=len(series))
    for ax, (label, values) in zip(axes, series.items()):
        ax.plot(time, values, lw=0.8)
        ax.set_ylabel("\n".join(textwrap.wrap(label, 22)))
    for ax in axes[1:]:
        ax.sharex(axes[0])
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel(xlabel)
    fig.align_ylabels(axes)
    _title(axes[0], title)
    return F.save(fig, path)
