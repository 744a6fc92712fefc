"""Neighbour lists with periodic boundaries through vesin.

Full lists (every ordered pair i -> j within the cutoff, once per periodic image), correct for cells
smaller than twice the cutoff (several images of one neighbour), non-periodic molecules and mixed pbc.
"""

from __future__ import annotations

import numpy as np
from vesin import NeighborList

_BIG = 1.0e3  # Å: padding for a bounding box along non-periodic directions


def neighbour_list(
    positions: np.ndarray, cell: np.ndarray, pbc, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(i, j, shifts)`` with ``r_ij = r_j - r_i + shifts @ cell`` and ``|r_ij| < cutoff``.

    positions: [N, 3] Å; cell: [3, 3] Å (rows are lattice vectors; may be zero for molecules);
    pbc: bool or three bools; cutoff: Å. ``shifts`` are integer image indices [E, 3].
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape [N, 3], got {positions.shape}")
    if not np.all(np.isfinite(positions)):
        bad = np.where(~np.isfinite(positions).all(axis=1))[0]
        raise ValueError(f"non-finite (NaN/inf) positions for atoms {bad[:10].tolist()}")
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3).copy()
    if len(positions) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 3), dtype=np.int64)
    if pbc.any():
        vol = abs(np.linalg.det(cell))
        if vol < 1e-8 and pbc.all():
            raise ValueError("periodic structure with a degenerate (zero-volume) cell")
    # vesin needs a non-degenerate box: fill non-periodic directions with a large orthogonal vector
    if not pbc.all():
        span = positions.max(axis=0) - positions.min(axis=0)
        for d in range(3):
            if not pbc[d] and np.linalg.norm(cell[d]) < 1e-8:
                # choose a direction orthogonal to the periodic vectors
                cell[d] = 0.0
                cell[d, d] = float(span.max() + 2 * cutoff + _BIG)
        if abs(np.linalg.det(cell)) < 1e-8:
            raise ValueError("cannot build a box for the non-periodic directions; give a full cell")
    calc = NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s = calc.compute(points=positions, box=cell, periodic=pbc, quantities="ijS")
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    s = s.astype(np.int64)
    # drop self-pairs at zero distance (vesin does not return them, keep the guard cheap)
    keep = ~((i == j) & (s == 0).all(axis=1))
    if not keep.all():
        i, j, s = i[keep], j[keep], s[keep]
    order = np.lexsort((j, i))
    return i[order], j[order], s[order]
