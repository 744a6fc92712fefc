"""States of a scalar CV by thresholds, e.g. the pore states of a breathing MOF by its volume per
formula unit: which state each value is in, and how the values of a run divide among the states.

State k holds the values ``bounds[k-1] <= v < bounds[k]`` (the first state everything below
``bounds[0]``, the last everything from ``bounds[-1]`` on), so ``len(bounds) + 1`` states. For an
upper bound that belongs to the state below it, pass ``np.nextafter(bound, np.inf)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _check_bounds(bounds) -> np.ndarray:
    b = np.asarray(bounds, dtype=float).ravel()
    if not len(b) or not np.all(np.isfinite(b)) or np.any(np.diff(b) <= 0):
        raise ValueError(f"state bounds must be finite and strictly increasing, got {list(b)}")
    return b


def classify(values, bounds: Sequence[float]) -> np.ndarray:
    """Index of the state of every value (module docstring); -1 for NaN (no state)."""
    b = _check_bounds(bounds)
    v = np.asarray(values, dtype=float).ravel()
    idx = np.digitize(v, b)
    idx[np.isnan(v)] = -1
    return idx


def state_summary(values, bounds: Sequence[float], names: Sequence[str]) -> dict:
    """How the finite ``values`` divide among the states ``names`` (one more than ``bounds``):
    ``n``, per state ``counts``, ``fractions`` (None without values) and ``visited``, and the
    ``min`` / ``mean`` / ``max`` of the values. JSON-ready."""
    b = _check_bounds(bounds)
    if len(names) != len(b) + 1:
        raise ValueError(f"{len(b)} bounds make {len(b) + 1} states, got {len(names)} names")
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    counts = np.bincount(classify(v, b), minlength=len(names))
    n = int(len(v))
    return {"n": n,
            "counts": {s: int(c) for s, c in zip(names, counts)},
            "fractions": {s: (float(c) / n if n else None) for s, c in zip(names, counts)},
            "visited": {s: bool(c > 0) for s, c in zip(names, counts)},
            "min": float(v.min()) if n else None, "mean": float(v.mean()) if n else None,
            "max": float(v.max()) if n else None}
