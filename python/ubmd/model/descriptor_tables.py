"""Constant index and coefficient tables of the Gaussian-moment descriptor (:mod:`.descriptor`):
symmetric index tuples, the bilinear maps of the invariants in symmetric storage, and the
derivatives of the angular monomials."""

from __future__ import annotations

import torch
from torch import Tensor

# symmetric storage of a 3x3 matrix: xx yy zz xy xz yz
SYM = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def sym_indices(n: int, order: int) -> Tensor:
    """All index tuples a <= b (<= c) of ``order`` 2 or 3 over range(n), as a [M, order] tensor."""
    out = []
    if order == 2:
        for a in range(n):
            for b in range(a, n):
                out.append([a, b])
    else:
        for a in range(n):
            for b in range(a, n):
                for c in range(b, n):
                    out.append([a, b, c])
    return torch.tensor(out, dtype=torch.long)


def jordan_terms() -> Tensor:
    """[27, 3] (s, p, q): component s of A B + B A (diagonal: (A B)_ii) in symmetric storage is
    the sum of a_p b_q over its rows (every coefficient is 1)."""
    rows = []
    for s, (i, j) in enumerate(SYM):
        for p in range(6):
            for q in range(6):
                a = torch.zeros(3, 3)
                b = torch.zeros(3, 3)
                a[SYM[p]] = a[SYM[p][::-1]] = 1.0
                b[SYM[q]] = b[SYM[q][::-1]] = 1.0
                m = a @ b
                c = m[i, i] if i == j else m[i, j] + m[j, i]
                if c != 0:
                    rows.append([s, p, q])
    return torch.tensor(rows, dtype=torch.long)


def outer_terms() -> Tensor:
    """[9, 3] (s, a, b): component s of the symmetrised outer product x y^T + y x^T (diagonal:
    x_i y_i) in symmetric storage is the sum of x_a y_b over its rows."""
    rows = []
    for s, (i, j) in enumerate(SYM):
        if i == j:
            rows.append([s, i, i])
        else:
            rows.append([s, i, j])
            rows.append([s, j, i])
    return torch.tensor(rows, dtype=torch.long)


def angular_derivatives() -> Tensor:
    """[30, 20] C: d ang_c / d u_d = sum_m C[10 d + m, c] mono_m(u), mono = the first 10 angular
    components (1, x, y, z, xx, yy, zz, xy, xz, yz) -- every derivative of a monomial of degree
    <= 3 is a monomial of degree <= 2."""
    powers = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (0, 2, 0), (0, 0, 2),
              (1, 1, 0), (1, 0, 1), (0, 1, 1), (3, 0, 0), (0, 3, 0), (0, 0, 3), (2, 1, 0),
              (2, 0, 1), (1, 2, 0), (0, 2, 1), (1, 0, 2), (0, 1, 2), (1, 1, 1)]
    c = torch.zeros(30, 20, dtype=torch.float64)
    for k, pw in enumerate(powers):
        for d in range(3):
            if pw[d] == 0:
                continue
            low = list(pw)
            low[d] -= 1
            c[10 * d + powers.index(tuple(low)), k] = float(pw[d])
    return c
