"""Multiscale-grid coverage of a 2-D CV space (e.g. the (phi, psi) Ramachandran plane).

At level ``k`` each axis is cut into ``2**k`` equal cells (``4**k`` cells in all); the coverage
at that level is the fraction of cells holding at least one point, and the coverage is the mean
over levels. Default levels 1..5 (2x2 .. 32x32 cells, the paper's 2^2..32^2). Periodic axes
(dihedrals, range [-180, 180) degrees) wrap values into the range, so 180 and -180 fall into the
same cell; on non-periodic axes points outside the range are not counted and the upper bound
belongs to the last cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_LEVELS = (1, 2, 3, 4, 5)
DIHEDRAL_RANGE = (-180.0, 180.0)


@dataclass
class Coverage:
    """Result of :func:`grid_coverage`; fractions are in [0, 1]."""

    levels: tuple[int, ...]
    fractions: tuple[float, ...]  # visited fraction per level
    n_points: int
    n_outside: int  # points outside a non-periodic range (not counted)

    @property
    def mean(self) -> float:
        return float(np.mean(self.fractions))

    def to_dict(self) -> dict:
        return {
            "coverage": self.mean,
            "levels": list(self.levels),
            "cells_per_axis": [2**k for k in self.levels],
            "fraction_per_level": list(self.fractions),
            "n_points": self.n_points,
            "n_outside": self.n_outside,
        }


def _check(points, ranges, periodic):
    points = np.asarray(points, dtype=float)
    if points.size == 0:
        points = np.zeros((0, 2))
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"coverage needs points of shape [n, 2], got {np.shape(points)}")
    ranges = np.asarray(ranges, dtype=float).reshape(2, 2)
    if np.any(ranges[:, 1] <= ranges[:, 0]):
        raise ValueError(f"coverage ranges must be (low, high) with low < high, got {ranges.tolist()}")
    periodic = np.broadcast_to(np.asarray(periodic, dtype=bool), (2,))
    if not np.all(np.isfinite(points)):
        raise ValueError("coverage points contain NaN or inf")
    return points, ranges, periodic


def cell_indices(points, level: int, ranges=(DIHEDRAL_RANGE, DIHEDRAL_RANGE), periodic=(True, True)):
    """Integer cell indices [n, 2] of ``points`` at ``level`` and a mask of points inside the grid."""
    points, ranges, periodic = _check(points, ranges, periodic)
    n = 2**level
    low, width = ranges[:, 0], ranges[:, 1] - ranges[:, 0]
    scaled = (points - low) / width  # in [0, 1) inside the range
    scaled = np.where(periodic, scaled - np.floor(scaled), scaled)
    inside = np.all((scaled >= 0.0) & (scaled <= 1.0), axis=1)
    index = np.floor(scaled * n).astype(np.int64)
    index = np.where(periodic, index % n, np.clip(index, 0, n - 1))
    return index, inside


def occupancy(points, level: int, ranges=(DIHEDRAL_RANGE, DIHEDRAL_RANGE), periodic=(True, True)) -> np.ndarray:
    """Boolean [2**level, 2**level] grid of visited cells (first index: first CV)."""
    index, inside = cell_indices(points, level, ranges, periodic)
    grid = np.zeros((2**level, 2**level), dtype=bool)
    grid[index[inside, 0], index[inside, 1]] = True
    return grid


def grid_coverage(
    points, levels=DEFAULT_LEVELS, ranges=(DIHEDRAL_RANGE, DIHEDRAL_RANGE), periodic=(True, True)
) -> Coverage:
    """Multiscale-grid coverage of 2-D ``points`` [n, 2] (see the module docstring)."""
    levels = tuple(int(k) for k in levels)
    if not levels or min(levels) < 0:
        raise ValueError(f"coverage levels must be non-negative integers, got {levels}")
    points, ranges, periodic = _check(points, ranges, periodic)
    fractions = []
    n_outside = 0
    for k in levels:
        grid = occupancy(points, k, ranges, periodic)
        fractions.append(float(grid.mean()))
    if len(points):
        n_outside = int((~cell_indices(points, levels[0], ranges, periodic)[1]).sum())
    return Coverage(levels, tuple(fractions), len(points), n_outside)


def coverage_by_round(
    points_by_round: dict, levels=DEFAULT_LEVELS, ranges=(DIHEDRAL_RANGE, DIHEDRAL_RANGE), periodic=(True, True)
) -> dict:
    """Coverage per walker, per round and accumulated over rounds.

    ``points_by_round`` maps a round label to a list of walkers' [n, 2] point arrays; rounds are
    taken in sorted order. Returns a JSON-ready dict with ``rounds`` (sorted labels),
    ``per_walker`` {round: [coverage of each walker]}, ``per_round`` {round: coverage of all
    walkers of the round together} and ``cumulative`` {round: coverage of every point of this and
    earlier rounds}, plus ``per_level`` versions of the last two.
    """
    rounds = sorted(points_by_round)
    result = {"rounds": [str(r) for r in rounds], "levels": list(levels), "per_walker": {}, "per_round": {},
              "cumulative": {}, "per_round_per_level": {}, "cumulative_per_level": {}}
    accumulated = []
    for r in rounds:
        walkers = [_check(w, ranges, periodic)[0] for w in points_by_round[r]]
        key = str(r)
        result["per_walker"][key] = [grid_coverage(w, levels, ranges, periodic).mean for w in walkers]
        merged = np.concatenate(walkers) if walkers else np.zeros((0, 2))
        this = grid_coverage(merged, levels, ranges, periodic)
        accumulated.append(merged)
        total = grid_coverage(np.concatenate(accumulated), levels, ranges, periodic)
        result["per_round"][key] = this.mean
        result["cumulative"][key] = total.mean
        result["per_round_per_level"][key] = list(this.fractions)
        result["cumulative_per_level"][key] = list(total.fractions)
    return result


def coverage_vs_steps(points_by_walker, steps_per_point: int, n_points: int = 40,
                      checkpoints=(), levels=DEFAULT_LEVELS,
                      ranges=(DIHEDRAL_RANGE, DIHEDRAL_RANGE), periodic=(True, True)) -> list[dict]:
    """Coverage of walkers run side by side, against the MD steps of all of them together.

    ``points_by_walker``: each walker's [n, 2] points in time order, one every
    ``steps_per_point`` MD steps. Row k is the coverage of every walker's first k points, at
    ``md_steps = k * steps_per_point * n_walkers``; k runs over about ``n_points`` values spaced
    evenly in log scale up to the shortest walker, plus every total of ``checkpoints`` (MD steps)
    that falls on a point. Rows: ``md_steps``, ``coverage`` (mean over levels),
    ``fraction_per_level``."""
    walkers = [_check(w, ranges, periodic)[0] for w in points_by_walker]
    if not walkers:
        return []
    k_max = min(len(w) for w in walkers)
    per_point = int(steps_per_point) * len(walkers)  # MD steps of all walkers per point each
    marks = {n // per_point for n in checkpoints if n % per_point == 0 and n // per_point <= k_max}
    ks = sorted({int(k) for k in np.unique(np.geomspace(1, max(k_max, 1), n_points).round())}
                | {k_max} | marks)
    rows = []
    for k in ks:
        if k == 0:
            continue
        cov = grid_coverage(np.concatenate([w[:k] for w in walkers]), levels, ranges, periodic)
        rows.append({"md_steps": int(k * per_point), "coverage": cov.mean,
                     "fraction_per_level": list(cov.fractions)})
    return rows
