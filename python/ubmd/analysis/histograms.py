"""Density-normalised CV histograms of several campaigns on shared bins.

Used e.g. for the volume per formula unit of MIL-53(Al) walkers, where the closed-pore and
large-pore states show up as two peaks.
"""

from __future__ import annotations

import numpy as np


def shared_histograms(samples: dict, bins: int = 50, value_range=None,
                      skip_empty: bool = False) -> dict:
    """Histograms of each campaign's values on one set of bins.

    ``samples`` maps a campaign label to a 1-D array of CV values (any unit; NaN and inf are
    left out); ``value_range`` (low, high) defaults to the range over all campaigns. Each density
    integrates to 1 over the bins (values outside ``value_range`` are left out and counted in
    ``n_outside``). Returns a JSON-ready dict: ``edges``, ``centres``, and per label ``density``,
    ``counts`` (integers, inside the range), ``n``, ``n_outside``, ``mean``, ``std``.

    A campaign without finite values is an error, unless ``skip_empty``: then it is left out,
    and the result is ``{}`` when no campaign is left.
    """
    if not samples and not skip_empty:
        raise ValueError("shared_histograms needs at least one campaign")
    arrays = {}
    for label, values in samples.items():
        values = np.asarray(values, dtype=float).ravel()
        values = values[np.isfinite(values)]
        if not len(values):
            if skip_empty:
                continue
            raise ValueError(f"campaign {label!r} has no finite values to histogram")
        arrays[str(label)] = values
    if not arrays:
        return {}
    if int(bins) < 1:
        raise ValueError(f"number of bins must be positive, got {bins}")
    if value_range is None:
        low = min(v.min() for v in arrays.values())
        high = max(v.max() for v in arrays.values())
        if high <= low:
            low, high = low - 0.5, high + 0.5
    else:
        low, high = map(float, value_range)
        if high <= low:
            raise ValueError(f"histogram range must have low < high, got {value_range}")
    edges = np.linspace(low, high, int(bins) + 1)
    result = {"edges": edges.tolist(), "centres": (0.5 * (edges[1:] + edges[:-1])).tolist(), "campaigns": {}}
    for label, values in arrays.items():
        inside = (values >= low) & (values <= high)
        counts, _ = np.histogram(values[inside], bins=edges)
        total = counts.sum()
        density = counts / (total * np.diff(edges)) if total else np.zeros(len(counts))
        result["campaigns"][label] = {
            "density": density.tolist(),
            "counts": counts.astype(int).tolist(),
            "n": int(len(values)),
            "n_outside": int((~inside).sum()),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
    return result
