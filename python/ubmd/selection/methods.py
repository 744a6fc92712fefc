"""Batch selection for active learning on feature matrices (docs/method.md).

One entry point, :func:`select_batch`, picks ``B`` rows of a candidate pool's feature matrix
``X`` (``[n_pool, K]``), given the features of the training set ``T`` (``[n_train, K]``).
Everything is vectorised over the pool; the only Python loop runs over the ``B`` selected items.

Kernel convention
-----------------
All kernel-based methods use the *linear* kernel on the features they receive,
``k(x, x') = <x, x'>``. For the posterior (GP) uncertainty the caller therefore passes the
posterior-transformed features

    phi~ = s L^{-1} (a phi),   with  L L^T = a^2 Phi_train^T Phi_train + s^2 I

(docs/method.md), so that ``<phi~, phi~>`` is the posterior variance u^2 and
``<phi~, phi~'>`` the posterior covariance *with the training data already conditioned in*.
``max_diag`` and ``max_det`` consequently never look at ``train_features`` (they only check
its width). For distance-based selection the caller passes raw features; ``max_dist`` and
``lcmd`` use the Euclidean distance between the rows they receive. ``kernel_transform``, if
given, is applied to both pool and training features first (e.g. the posterior transform
above), and the methods then act on the transformed rows.

Methods
-------
``random``     B distinct pool indices drawn uniformly (``torch.randperm`` seeded by ``seed``).
``max_diag``   the B largest posterior variances ``k(x, x) = ||x||^2``.
``max_det``    greedy pivoted Cholesky on the pool kernel (greedy maximisation of the
               log-determinant of the selected kernel block): ``d = diag k``; repeat B times:
               ``j = argmax d``, ``l = (k(:, j) - L L_j^T) / sqrt(d_j)``, ``d -= l^2``. The column
               ``k(:, j) = X x_j`` is computed from the K-dim features; the n x n kernel is never
               formed (memory O(n (K + B))).
``max_dist``   farthest-point selection: repeatedly pick the pool point whose minimum squared
               Euclidean distance to train + already selected points is largest.
``lcmd``       largest-cluster maximum distance: every pool point belongs to its nearest centre
               among train + selected points; a cluster's weight is the sum of the squared
               distances of its members to its centre; pick the member of the heaviest cluster
               that is farthest from that centre, make it a centre, reassign.

Rules for the edge cases
------------------------
* ``batch_size <= 0``: ``ValueError``. ``batch_size >= n_pool``: all indices ``0..n_pool-1``
  in order, with a ``UserWarning``.
* Non-finite features (NaN/inf): ``ValueError`` naming the matrix and the first bad row.
* float32 and float64 are computed in their own precision (mixed inputs are promoted; float16
  and bfloat16 are upcast to float32); other dtypes raise ``TypeError``.
* Empty training set (``None`` or zero rows) for ``max_dist``/``lcmd``: the first pick is the
  pool point farthest from the pool mean (the distances are translation invariant, so this is
  the "largest norm" rule applied to centred features); the selection then continues with the
  selected points as the only centres.
* Exhausted diversity (duplicates, zero variance, rank deficiency): once the score of the best
  remaining candidate (``d_j`` for ``max_det``/``max_diag``, the minimum squared distance for
  ``max_dist``, the largest member distance for ``lcmd``) is at or below the round-off level
  ``tol = 32 sqrt(K) eps(dtype) * scale`` (``scale``: largest squared row norm entering the
  arithmetic; ``lcmd`` counts distances at or below ``tol`` as 0 in the cluster weights), the
  greedy stops and the remaining slots are filled with distinct random
  not-yet-selected pool indices (seeded by ``seed``), with a ``UserWarning``. Selected points
  get score 0 and are never picked twice.
* Ties are broken towards the smallest index (``torch.argmax`` semantics).
The result is a ``torch.int64`` tensor on the CPU, deterministic given the inputs and ``seed``.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import torch

from ..errors import InputTypeError
from ..keys import SELECTION_METHODS

Tensor = torch.Tensor

METHODS = SELECTION_METHODS

#: Upper bound on the number of elements of the temporary [n_pool, chunk] distance block.
CHUNK_ELEMENTS = 1 << 23


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def select_batch(
    pool_features: Tensor,
    train_features: Tensor | None,
    batch_size: int,
    method: str,
    seed: int = 0,
    kernel_transform: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Select ``batch_size`` rows of ``pool_features`` for labelling.

    Args:
        pool_features: ``[n_pool, K]`` candidate features (posterior-transformed ``phi~`` for
            ``max_diag``/``max_det``, raw features for ``max_dist``/``lcmd``; see the module
            docstring). NumPy arrays are accepted too.
        train_features: ``[n_train, K]`` training features, or ``None``/zero rows for none.
            Used by ``max_dist`` and ``lcmd`` only (width-checked for the others).
        batch_size: number B of indices to return (> 0).
        method: one of :data:`METHODS`.
        seed: seed of the random picks (``random`` and the random fill after an early stop).
        kernel_transform: optional callable ``[m, K] -> [m, K']`` applied to the pool and the
            training features before selecting (e.g. the posterior transform).

    Returns:
        ``torch.int64`` tensor of ``min(B, n_pool)`` distinct pool indices, in selection order.

    Raises:
        ValueError: unknown method, ``batch_size <= 0``, bad shapes, non-finite features.
        TypeError: non-floating features.
    """
    if method not in METHODS:
        raise ValueError(f"unknown selection method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise InputTypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    batch_size = int(batch_size)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")

    pool, train = _prepare(pool_features, train_features, kernel_transform)
    n_pool = pool.shape[0]
    if batch_size >= n_pool:
        warnings.warn(
            f"batch_size={batch_size} >= pool size {n_pool}: selecting the whole pool",
            UserWarning,
            stacklevel=2,
        )
        return torch.arange(n_pool, dtype=torch.int64)

    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    if method == "random":
        return torch.randperm(n_pool, generator=gen)[:batch_size]

    greedy = {
        "max_diag": _max_diag,
        "max_det": _max_det,
        "max_dist": _max_dist,
        "lcmd": _lcmd,
    }[method]
    if method in ("max_dist", "lcmd"):
        picked = greedy(pool, train, batch_size)
    else:
        picked = greedy(pool, batch_size)
    if len(picked) < batch_size:
        warnings.warn(
            f"{method}: only {len(picked)} of {batch_size} picks carry information (duplicates or "
            f"zero variance left in the pool); filling the other {batch_size - len(picked)} "
            "with random unselected pool points",
            UserWarning,
            stacklevel=2,
        )
        picked = _fill_random(picked, n_pool, batch_size, gen)
    return torch.tensor(picked, dtype=torch.int64)


def evenly_spaced(n: int, count: int) -> list[int]:
    """``count`` indices of ``0 .. n-1`` spread evenly, first and last included (the rounded
    ``linspace``; ``count`` 1: the first): the baseline that picks frames evenly in time, or the
    rounds of a learning curve. All of them when ``count >= n``."""
    if n < 0 or count < 1:
        raise ValueError(f"evenly_spaced needs n >= 0 and count >= 1, got n={n}, count={count}")
    if count >= n:
        return list(range(n))
    return [int(i) for i in np.unique(np.linspace(0, n - 1, count).round().astype(int))]


def min_squared_distances(
    x: Tensor, centres: Tensor, chunk_elements: int | None = None
) -> tuple[Tensor, Tensor]:
    """Minimum squared Euclidean distance of every row of ``x`` to the rows of ``centres``.

    Uses ``||x||^2 + ||c||^2 - 2 x.c`` over chunks of centres so that the temporary block holds
    at most about ``chunk_elements`` numbers (default :data:`CHUNK_ELEMENTS`). Returns ``(dist2 [n], argmin [n])``; distances are
    clamped at 0. ``centres`` must have at least one row.
    """
    if centres.shape[0] == 0:
        raise ValueError("min_squared_distances needs at least one centre")
    if chunk_elements is None:
        chunk_elements = CHUNK_ELEMENTS
    n = x.shape[0]
    sq_x = _sq_norms(x)
    sq_c = _sq_norms(centres)
    chunk = max(1, chunk_elements // max(n, 1))
    best = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    arg = torch.zeros(n, dtype=torch.int64, device=x.device)
    for start in range(0, centres.shape[0], chunk):
        c = centres[start : start + chunk]
        d2 = torch.addmm(sq_c[start : start + chunk].unsqueeze(0), x, c.T, alpha=-2.0)
        d2.add_(sq_x.unsqueeze(1))
        val, idx = d2.min(dim=1)
        better = val < best  # strict: the first (smallest-index) centre wins ties
        best = torch.where(better, val, best)
        arg = torch.where(better, idx + start, arg)
    return best.clamp_min_(0.0), arg


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------
def _as_float_matrix(a, name: str) -> Tensor:
    t = a if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a))
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D [n, K] matrix, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise InputTypeError(f"{name} must hold floating-point features, got dtype {t.dtype}")
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.detach()


def _check_finite(t: Tensor, name: str) -> None:
    ok = torch.isfinite(t).all(dim=1)
    if not bool(ok.all()):
        bad = torch.nonzero(~ok).flatten()
        raise ValueError(
            f"{name} contain non-finite values (NaN/inf) in {bad.numel()} row(s), first row "
            f"{int(bad[0])}; remove or recompute those structures before selecting"
        )


def _prepare(pool_features, train_features, kernel_transform) -> tuple[Tensor, Tensor]:
    pool = _as_float_matrix(pool_features, "pool_features")
    if train_features is None:
        train = pool.new_zeros((0, pool.shape[1]))
    else:
        train = _as_float_matrix(train_features, "train_features")
    if train.shape[0] > 0 and train.shape[1] != pool.shape[1]:
        raise ValueError(
            f"feature widths differ: pool has K={pool.shape[1]}, train has K={train.shape[1]}"
        )
    if kernel_transform is not None:
        with torch.no_grad():
            pool = _as_float_matrix(kernel_transform(pool), "kernel_transform(pool_features)")
            if train.shape[0] > 0:
                train = _as_float_matrix(
                    kernel_transform(train), "kernel_transform(train_features)"
                )
            else:
                train = pool.new_zeros((0, pool.shape[1]))
    dtype = torch.promote_types(pool.dtype, train.dtype)
    if dtype not in (torch.float32, torch.float64):
        raise InputTypeError(f"features must be float32 or float64, got {dtype}")
    pool = pool.to(dtype)
    train = train.to(device=pool.device, dtype=dtype)
    if train.shape[0] == 0:
        train = train.reshape(0, pool.shape[1])
    _check_finite(pool, "pool_features")
    _check_finite(train, "train_features")
    return pool, train


def _sq_norms(x: Tensor) -> Tensor:
    return torch.einsum("ij,ij->i", x, x)


def _tol(x: Tensor, scale: float) -> float:
    """Round-off level of the greedy scores: 32 sqrt(K) eps(dtype) * scale."""
    eps = torch.finfo(x.dtype).eps
    return 32.0 * math.sqrt(max(x.shape[1], 1)) * eps * float(scale)


def _fill_random(picked: list[int], n_pool: int, batch_size: int, gen) -> list[int]:
    taken = torch.zeros(n_pool, dtype=torch.bool)
    if picked:
        taken[torch.tensor(picked, dtype=torch.int64)] = True
    free = torch.nonzero(~taken).flatten()
    extra = free[torch.randperm(free.numel(), generator=gen)[: batch_size - len(picked)]]
    return picked + extra.tolist()


# --------------------------------------------------------------------------------------------
# the greedy methods: each returns the informative picks (a list, possibly shorter than B)
# --------------------------------------------------------------------------------------------
def _max_diag(x: Tensor, batch_size: int) -> list[int]:
    d = _sq_norms(x)
    tol = _tol(x, d.max())
    # stable descending sort: equal variances keep index order (smallest index first)
    order = torch.sort(d, descending=True, stable=True).indices[:batch_size]
    keep = d[order] > tol
    return order[keep].tolist()


def _max_det(x: Tensor, batch_size: int) -> list[int]:
    n = x.shape[0]
    d = _sq_norms(x)
    tol = _tol(x, d.max())
    chol = x.new_zeros((batch_size, n))  # row i: l of the i-th pick over the whole pool (L^T)
    picked: list[int] = []
    for i in range(batch_size):
        j = int(torch.argmax(d))
        dj = float(d[j])
        if not dj > tol:
            break
        col = x @ x[j]  # k(:, j) without forming the kernel
        if i > 0:
            col = torch.addmv(col, chol[:i].T, chol[:i, j], alpha=-1.0)
        col = col / math.sqrt(dj)
        chol[i] = col
        d = (d - col * col).clamp_min_(0.0)
        d[j] = 0.0
        picked.append(j)
    return picked


def _centre(pool: Tensor, train: Tensor) -> tuple[Tensor, Tensor]:
    """Shift pool and train by the pool mean: distances are unchanged, round-off is reduced."""
    shift = pool.mean(dim=0, keepdim=True)
    return pool - shift, train - shift


def _max_dist(pool: Tensor, train: Tensor, batch_size: int) -> list[int]:
    x, t = _centre(pool, train)
    sq = _sq_norms(x)
    scale = sq.max()
    if t.shape[0] > 0:
        scale = torch.maximum(scale, _sq_norms(t).max())
        mind, _ = min_squared_distances(x, t)
    else:
        mind = None
    tol = _tol(x, scale)
    picked: list[int] = []
    for _ in range(batch_size):
        if mind is None:  # empty training set: farthest from the pool mean
            j = int(torch.argmax(sq))
            if not float(sq[j]) > tol:
                break
            mind = torch.full_like(sq, math.inf)
        else:
            j = int(torch.argmax(mind))
            if not float(mind[j]) > tol:
                break
        dj = torch.addmv(sq + sq[j], x, x[j], alpha=-2.0).clamp_min_(0.0)
        mind = torch.minimum(mind, dj)
        mind[j] = 0.0
        picked.append(j)
    return picked


def _lcmd(pool: Tensor, train: Tensor, batch_size: int) -> list[int]:
    x, t = _centre(pool, train)
    n_train = t.shape[0]
    sq = _sq_norms(x)
    scale = sq.max()
    if n_train > 0:
        scale = torch.maximum(scale, _sq_norms(t).max())
        mind, assign = min_squared_distances(x, t)
    else:
        mind = assign = None
    tol = _tol(x, scale)
    n_centres = n_train + batch_size  # centre ids: train rows, then picks in order
    picked: list[int] = []
    for i in range(batch_size):
        if mind is None:  # empty training set: farthest from the pool mean
            j = int(torch.argmax(sq))
            if not float(sq[j]) > tol:
                break
            mind = torch.full_like(sq, math.inf)
            assign = torch.zeros_like(sq, dtype=torch.int64)
        else:
            # distances at round-off level count as 0, so that many duplicates of a centre
            # cannot add up to a spurious weight
            informative = torch.where(mind > tol, mind, mind.new_tensor(0.0))
            weight = torch.zeros(n_centres, dtype=torch.float64, device=x.device)
            weight.scatter_add_(0, assign, informative.to(torch.float64))
            c = int(torch.argmax(weight))
            if not float(weight[c]) > 0.0:
                break
            member = torch.where(assign == c, mind, mind.new_tensor(-1.0))
            j = int(torch.argmax(member))
        dj = torch.addmv(sq + sq[j], x, x[j], alpha=-2.0).clamp_min_(0.0)
        closer = dj < mind  # strict: an existing centre keeps points at equal distance
        mind = torch.where(closer, dj, mind)
        assign = torch.where(closer, assign.new_tensor(n_train + i), assign)
        mind[j] = 0.0
        assign[j] = n_train + i
        picked.append(j)
    return picked
