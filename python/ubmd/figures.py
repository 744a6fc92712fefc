"""The figures' common ground: a matplotlib ``Figure`` on the Agg canvas (no pyplot, no global
backend state, no display needed), one style for all of ubmd's plots (the one of the
calibration plots: labels with units, legends that do not cover data, constrained layout so
that titles and labels are never cut), and PNG output.

Every plotting function of the package (``ubmd.uncertainty.plots``, ``ubmd.evaluation.plots``,
``ubmd.analysis.plots``, ``ubmd.al.report``) builds on these.
"""

from __future__ import annotations

from pathlib import Path

#: font sizes (points) of axis labels, tick labels, legends and titles
LABEL_SIZE, TICK_SIZE, LEGEND_SIZE, TITLE_SIZE = 10, 9, 8, 10
DPI = 150


def blank_figure(width: float, height: float):
    """An empty figure of ``width`` x ``height`` inches with constrained layout (for a layout of
    one's own: ``fig.add_gridspec``); style each axes with :func:`style_axes`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def new_figure(width: float = 4.5, height: float = 4.5, n_cols: int = 1, n_rows: int = 1,
               **subplot_kw):
    """A figure of ``n_rows`` x ``n_cols`` panels, each ``width`` x ``height`` inches, with
    constrained layout; returns ``(fig, axes)`` with ``axes`` a flat list."""
    fig = blank_figure(width * n_cols, height * n_rows)
    axes = [fig.add_subplot(n_rows, n_cols, k + 1, **subplot_kw)
            for k in range(n_rows * n_cols)]
    for ax in axes:
        style_axes(ax)
    return fig, axes


def style_axes(ax) -> None:
    """Tick and label sizes of the package's style."""
    ax.tick_params(labelsize=TICK_SIZE)
    ax.xaxis.label.set_size(LABEL_SIZE)
    ax.yaxis.label.set_size(LABEL_SIZE)
    ax.title.set_size(TITLE_SIZE)


def integer_ticks(axis) -> None:
    """Ticks at whole numbers only (rounds, walkers, label counts): no "round 0.5"."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` (its folder is created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def colour_key(fig, ax, values, label: str, cmap: str = "viridis", integer: bool = False):
    """A colour bar for ``values`` (e.g. round or walker indices) beside ``ax``; returns the
    ``Normalize`` and colour map to colour the data with."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, Normalize

    values = np.asarray(list(values), dtype=float)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    cm = colormaps[cmap]
    if integer:
        n = int(round(hi - lo)) + 1
        norm = BoundaryNorm(np.arange(lo - 0.5, hi + 1.0, 1.0), cm.N)
        bar = fig.colorbar(ScalarMappable(norm, cm), ax=ax, label=label,
                           ticks=np.arange(lo, hi + 1) if n <= 12 else None)
        if n > 12:
            integer_ticks(bar.ax.yaxis)
    else:
        norm = Normalize(lo, hi if hi > lo else lo + 1.0)
        bar = fig.colorbar(ScalarMappable(norm, cm), ax=ax, label=label)
    bar.ax.tick_params(labelsize=TICK_SIZE)
    bar.ax.yaxis.label.set_size(LABEL_SIZE)
    return norm, cm
