"""PNG plots of exploration analyses (matplotlib ``Figure`` + Agg canvas; no pyplot state).

Every function takes already computed arrays/dicts, writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(size) -> Figure:
    fig = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_coverage(points_by_walker: dict, occupancies: dict, fractions: dict, ranges, labels, path) -> Path:
    """Scatter of 2-D CV points per walker plus one panel of visited cells per grid level.

    ``occupancies``/``fractions`` map level k to a boolean [2^k, 2^k] grid and its fraction.
    """
    levels = sorted(occupancies)
    fig = _figure((4.4 + 2.3 * len(levels), 4.2))
    grid = fig.add_gridspec(1, 1 + len(levels), width_ratios=[2] + [1] * len(levels))
    ax = fig.add_subplot(grid[0, 0])
    for name, pts in points_by_walker.items():
        pts = np.asarray(pts).reshape(-1, 2)
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.6, label=str(name), rasterized=True)
    ax.set_xlim(*ranges[0])
    ax.set_ylim(*ranges[1])
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_aspect("equal", adjustable="box")
    mean = float(np.mean([fractions[k] for k in levels]))
    ax.set_title(f"coverage {mean:.3f} (mean over {len(levels)} levels)")
    if 1 < len(points_by_walker) <= 12:
        ax.legend(fontsize=6, markerscale=3, loc="upper right")
    extent = [ranges[0][0], ranges[0][1], ranges[1][0], ranges[1][1]]
    for n, k in enumerate(levels):
        sub = fig.add_subplot(grid[0, 1 + n])
        sub.imshow(occupancies[k].T, origin="lower", extent=extent, cmap="Blues", vmin=0, vmax=1.4,
                   interpolation="nearest", aspect="equal")
        sub.set_title(f"{2**k}x{2**k}: {fractions[k]:.3f}", fontsize=8)
        sub.tick_params(labelsize=6)
    return _save(fig, path)


def plot_acf(lags, mean, std, path, models: dict | None = None, xlabel: str = "lag (frames)",
             title: str | None = None, runs=None) -> Path:
    """ACF mean +- std over runs (shaded), optional single runs and model curves {label: acf}."""
    fig = _figure((5.5, 4.0))
    ax = fig.add_subplot()
    lags = np.asarray(lags)
    if runs is not None:
        for curve in runs:
            ax.plot(lags, curve, color="0.75", lw=0.6)
    ax.plot(lags, mean, color="C0", lw=1.8, label="data mean")
    ax.fill_between(lags, mean - std, mean + std, color="C0", alpha=0.25, label="data ± std")
    for n, (label, curve) in enumerate((models or {}).items()):
        ax.plot(lags[: len(curve)], curve, ls="--", color=f"C{n + 1}", label=label)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalised autocorrelation")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_histograms(hist: dict, xlabel: str, path, title: str | None = None) -> Path:
    """Overlaid step histograms (densities) from :func:`shared_histograms`."""
    fig = _figure((5.5, 4.0))
    ax = fig.add_subplot()
    edges = np.asarray(hist["edges"])
    for label, h in hist["campaigns"].items():
        ax.stairs(h["density"], edges, label=f"{label} (n={h['n']})", fill=False, lw=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("probability density (1/unit of x)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_traces(time, series: dict, path, xlabel: str = "frame", title: str | None = None) -> Path:
    """One panel per CV: {axis label: values} against ``time``."""
    fig = _figure((6.0, 1.0 + 2.0 * len(series)))
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (label, values) in zip(axes, series.items()):
        ax.plot(time, values, lw=0.8)
        ax.set_ylabel(label, fontsize=8)
    axes[-1].set_xlabel(xlabel)
    if title:
        axes[0].set_title(title)
    return _save(fig, path)
