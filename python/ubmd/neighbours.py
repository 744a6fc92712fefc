"""Neighbour lists with periodic boundaries through vesin.

Full lists (every ordered pair i -> j within the cutoff, once per periodic image), correct for cells
smaller than twice the cutoff (several images of one neighbour), non-periodic molecules and mixed pbc
(periodic vectors along any direction; missing non-periodic vectors are completed orthogonally).
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
    # vesin needs a non-degenerate box: fill non-periodic directions that have no cell vector
    # with long vectors orthogonal to the others (a non-periodic direction never shifts an edge,
    # so its vector only has to complete the box)
    if not pbc.all():
        length = float(np.ptp(positions, axis=0).max() + 2 * cutoff + _BIG)
        empty = [d for d in range(3) if not pbc[d] and np.linalg.norm(cell[d]) < 1e-8]
        cell = _complete_box(cell, empty, length)
        if abs(np.linalg.det(cell)) < 1e-8:
            # given non-periodic vectors parallel to the periodic ones: replace them all
            cell = _complete_box(cell, [d for d in range(3) if not pbc[d]], length)
        if abs(np.linalg.det(cell)) < 1e-8:
            raise ValueError("the periodic cell vectors are linearly dependent (degenerate cell)")
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


def _complete_box(cell: np.ndarray, rows: list, length: float) -> np.ndarray:
    """``cell`` with the vectors ``rows`` replaced by orthonormal vectors (times ``length``)
    orthogonal to the other rows (the periodic and given ones)."""
    if not rows:
        return cell
    cell = cell.copy()
    keep = [d for d in range(3) if d not in rows and np.linalg.norm(cell[d]) > 1e-8]
    if keep:
        _, sv, vt = np.linalg.svd(cell[keep])
        rank = int((sv > 1e-8 * sv.max()).sum())
        basis = vt[rank:]  # orthonormal complement of the kept vectors
    else:
        basis = np.eye(3)
    if len(basis) < len(rows):
        return cell  # the kept vectors are degenerate: the caller reports it
    # prefer the coordinate axes (the old, well-tested box: e_d for direction d) where they fit
    for d in rows:
        axis = np.eye(3)[d]
        proj = basis.T @ (basis @ axis)
        if np.linalg.norm(proj) > 1e-6:
            v = proj / np.linalg.norm(proj)
        else:
            v = basis[0]
        cell[d] = length * v
        basis = basis - np.outer(basis @ v, v)  # remove v from the remaining span
        if len(basis):
            _, sv, vt = np.linalg.svd(basis)
            basis = vt[: int((sv > 1e-8).sum())]
    return cell
