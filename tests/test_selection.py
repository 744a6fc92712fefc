"""Tests of ubmd.selection against independent brute-force references written with plain loops."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from ubmd.selection import methods as selection
from ubmd.cli import select as select_cli
from ubmd.selection.methods import METHODS, min_squared_distances, select_batch


# --------------------------------------------------------------------------------------------
# data and naive references
# --------------------------------------------------------------------------------------------
def _features(n, k, seed, dtype=torch.float64, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.randn(k, generator=g, dtype=torch.float64))  # anisotropic
    x = torch.randn(n, k, generator=g, dtype=torch.float64) * scales + offset
    return x.to(dtype)


def _greedy_logdet_bruteforce(kernel: np.ndarray, b: int) -> list[int]:
    """Greedy maximisation of log det K[S, S], evaluating every candidate by slogdet (O(n^4))."""
    chosen: list[int] = []
    for _ in range(b):
        best, best_j = -math.inf, -1
        for j in range(kernel.shape[0]):
            if j in chosen:
                continue
            s = chosen + [j]
            sign, logdet = np.linalg.slogdet(kernel[np.ix_(s, s)])
            val = logdet if sign > 0 else -math.inf
            if val > best:
                best, best_j = val, j
        chosen.append(best_j)
    return chosen


def _sqdist(a, b):
    return sum((float(a[k]) - float(b[k])) ** 2 for k in range(len(a)))


def _naive_max_dist(pool: np.ndarray, train: np.ndarray, b: int) -> list[int]:
    centres = [train[t] for t in range(len(train))]
    chosen: list[int] = []
    if not centres:  # documented rule: farthest from the pool mean first
        mean = pool.mean(axis=0)
        j = max(range(len(pool)), key=lambda i: (_sqdist(pool[i], mean), -i))
        chosen.append(j)
        centres.append(pool[j])
    while len(chosen) < b:
        best, best_j = -1.0, -1
        for i in range(len(pool)):
            d = min(_sqdist(pool[i], c) for c in centres)
            if d > best:
                best, best_j = d, i
        chosen.append(best_j)
        centres.append(pool[best_j])
    return chosen


def _naive_lcmd(pool: np.ndarray, train: np.ndarray, b: int) -> list[int]:
    centres = [train[t] for t in range(len(train))]
    chosen: list[int] = []
    if not centres:
        mean = pool.mean(axis=0)
        j = max(range(len(pool)), key=lambda i: (_sqdist(pool[i], mean), -i))
        chosen.append(j)
        centres.append(pool[j])
    while len(chosen) < b:
        owner, dist = [], []
        for i in range(len(pool)):
            ds = [_sqdist(pool[i], c) for c in centres]
            c = min(range(len(ds)), key=lambda m: (ds[m], m))
            owner.append(c)
            dist.append(ds[c])
        weight = [0.0] * len(centres)
        for i in range(len(pool)):
            weight[owner[i]] += dist[i]
        heavy = max(range(len(centres)), key=lambda c: (weight[c], -c))
        members = [i for i in range(len(pool)) if owner[i] == heavy]
        j = max(members, key=lambda i: (dist[i], -i))
        chosen.append(j)
        centres.append(pool[j])
    return chosen


# --------------------------------------------------------------------------------------------
# max_det / max_diag
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_max_det_matches_bruteforce_greedy_logdet(seed, dtype):
    x = _features(40, 6, seed, dtype)
    b = 6  # full rank of the 6-dim linear kernel
    got = select_batch(x, None, b, "max_det").tolist()
    kernel = x.double().numpy() @ x.double().numpy().T
    assert got == _greedy_logdet_bruteforce(kernel, b)


@pytest.mark.parametrize("seed", [5, 6])
def test_max_det_posterior_kernel_via_transform(seed):
    """phi~ = s L^-1 a phi reproduces greedy log-det selection on s^2 a^2 X C^-1 X^T."""
    raw_pool = _features(40, 6, seed)
    raw_train = _features(12, 6, seed + 100)
    s = 1e-2
    a = 1.0 / math.sqrt(float((raw_train**2).sum(1).mean()))
    c = a**2 * raw_train.T @ raw_train + s**2 * torch.eye(6, dtype=torch.float64)
    chol = torch.linalg.cholesky(c)

    def transform(phi):
        return s * torch.linalg.solve_triangular(chol, a * phi.T, upper=False).T

    got = select_batch(raw_pool, raw_train, 6, "max_det", kernel_transform=transform).tolist()
    xp = raw_pool.numpy()
    kernel = s**2 * a**2 * xp @ np.linalg.solve(c.numpy(), xp.T)
    assert got == _greedy_logdet_bruteforce(kernel, 6)


def test_max_det_rank_deficient_fills_with_random_unique():
    x = _features(40, 6, 11)
    kernel = x.numpy() @ x.numpy().T
    with pytest.warns(UserWarning, match="only 6 of 9"):
        got = select_batch(x, None, 9, "max_det", seed=3).tolist()
    assert got[:6] == _greedy_logdet_bruteforce(kernel, 6)
    assert len(set(got)) == 9 and all(0 <= i < 40 for i in got)
    with pytest.warns(UserWarning):
        again = select_batch(x, None, 9, "max_det", seed=3).tolist()
    assert again == got  # the random fill is seeded


def test_max_det_duplicates_never_repicked():
    base = _features(5, 8, 4)
    x = torch.cat([base, base, base])  # every point three times
    with pytest.warns(UserWarning, match="only 5 of 7"):
        got = select_batch(x, None, 7, "max_det").tolist()
    assert sorted(i % 5 for i in got[:5]) == [0, 1, 2, 3, 4]
    assert len(set(got)) == 7


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_max_diag_is_top_variance(dtype):
    x = _features(50, 4, 7, dtype)
    got = select_batch(x, None, 5, "max_diag").tolist()
    var = [float(sum(v * v for v in row)) for row in x.double().tolist()]
    assert got == sorted(range(50), key=lambda i: -var[i])[:5]


@pytest.mark.parametrize("method", ["max_diag", "max_det", "max_dist", "lcmd"])
def test_zero_variance_pool_is_filled_randomly(method):
    x = torch.zeros(20, 3)
    with pytest.warns(UserWarning, match="only 0 of 4"):
        got = select_batch(x, None, 4, method, seed=1).tolist()
    assert len(set(got)) == 4 and all(0 <= i < 20 for i in got)


# --------------------------------------------------------------------------------------------
# max_dist / lcmd
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_train", [0, 7])
def test_max_dist_matches_naive(seed, dtype, n_train):
    pool = _features(40, 6, seed, dtype)
    train = _features(n_train, 6, seed + 50, dtype)
    got = select_batch(pool, train, 8, "max_dist").tolist()
    assert got == _naive_max_dist(pool.double().numpy(), train.double().numpy(), 8)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_train", [0, 7])
def test_lcmd_matches_naive(seed, dtype, n_train):
    pool = _features(40, 6, seed, dtype)
    train = _features(n_train, 6, seed + 50, dtype)
    got = select_batch(pool, train, 8, "lcmd").tolist()
    assert got == _naive_lcmd(pool.double().numpy(), train.double().numpy(), 8)


@pytest.mark.parametrize("method", ["max_dist", "lcmd"])
def test_chunked_initial_distances(method, monkeypatch):
    """A tiny chunk (several train chunks) gives the same picks as the naive reference."""
    pool = _features(30, 5, 21)
    train = _features(23, 5, 22)
    monkeypatch.setattr(selection, "CHUNK_ELEMENTS", 64)  # 2 train rows per chunk
    got = select_batch(pool, train, 6, method).tolist()
    naive = {"max_dist": _naive_max_dist, "lcmd": _naive_lcmd}[method]
    assert got == naive(pool.numpy(), train.numpy(), 6)


def test_min_squared_distances_against_cdist():
    x, c = _features(33, 4, 1), _features(17, 4, 2)
    d2, arg = min_squared_distances(x, c, chunk_elements=50)
    ref = torch.cdist(x, c) ** 2
    torch.testing.assert_close(d2, ref.min(1).values)
    assert torch.equal(arg, ref.argmin(1))


@pytest.mark.parametrize("method", ["max_dist", "lcmd"])
def test_float32_with_large_common_offset(method):
    """Distances are taken after removing the pool mean, so a big offset costs no precision."""
    pool = _features(40, 6, 8, offset=3.0e3)
    train = _features(5, 6, 9, offset=3.0e3)
    ref = select_batch(pool, train, 6, method).tolist()
    naive = {"max_dist": _naive_max_dist, "lcmd": _naive_lcmd}[method]
    assert ref == naive(pool.numpy(), train.numpy(), 6)
    assert select_batch(pool.float(), train.float(), 6, method).tolist() == ref


@pytest.mark.parametrize("method", ["max_dist", "lcmd"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_duplicates_of_train_are_not_informative(method, dtype):
    train = _features(50, 64, 1, dtype, offset=2.0)
    new = _features(2, 64, 2, dtype, offset=2.0)
    pool = torch.cat([train, train, train, new, train])  # only rows 150, 151 are new
    with pytest.warns(UserWarning, match="only 2 of 4"):
        got = select_batch(pool, train, 4, method).tolist()
    assert sorted(got[:2]) == [150, 151]
    assert len(set(got)) == 4


# --------------------------------------------------------------------------------------------
# random, determinism, input checks
# --------------------------------------------------------------------------------------------
def test_random_unique_deterministic_and_seeded():
    x = _features(1000, 3, 0)
    a = select_batch(x, None, 50, "random", seed=4)
    assert a.dtype == torch.int64 and a.shape == (50,)
    assert len(set(a.tolist())) == 50 and int(a.min()) >= 0 and int(a.max()) < 1000
    assert torch.equal(a, select_batch(x, None, 50, "random", seed=4))
    assert not torch.equal(a, select_batch(x, None, 50, "random", seed=5))


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_and_numpy_input(method):
    pool, train = _features(60, 8, 3), _features(6, 8, 4)
    a = select_batch(pool, train, 7, method, seed=2)
    b = select_batch(pool.numpy(), train.numpy(), 7, method, seed=2)
    assert torch.equal(a, b)
    assert len(set(a.tolist())) == 7


@pytest.mark.parametrize("method", METHODS)
def test_batch_at_least_pool_returns_all(method):
    x = _features(5, 3, 0)
    with pytest.warns(UserWarning, match="whole pool"):
        got = select_batch(x, None, 9, method)
    assert got.tolist() == [0, 1, 2, 3, 4]


def test_input_errors():
    x = _features(10, 3, 0)
    with pytest.raises(ValueError, match="positive"):
        select_batch(x, None, 0, "max_det")
    with pytest.raises(ValueError, match="positive"):
        select_batch(x, None, -2, "random")
    with pytest.raises(ValueError, match="unknown selection method"):
        select_batch(x, None, 2, "maxdet")
    with pytest.raises(ValueError, match="widths differ"):
        select_batch(x, _features(4, 5, 1), 2, "max_dist")
    with pytest.raises(ValueError, match="2-D"):
        select_batch(x[0], None, 2, "max_det")
    with pytest.raises(TypeError, match="floating"):
        select_batch(torch.ones(10, 3, dtype=torch.int64), None, 2, "max_det")
    bad = x.clone()
    bad[4, 1] = float("nan")
    with pytest.raises(ValueError, match="pool_features.*first row 4"):
        select_batch(bad, None, 2, "max_det")
    with pytest.raises(ValueError, match="train_features.*non-finite"):
        select_batch(x, bad, 2, "lcmd")


def test_mixed_precision_is_promoted():
    pool, train = _features(40, 6, 1), _features(7, 6, 2)
    ref = select_batch(pool, train, 5, "lcmd")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(select_batch(pool.float(), train, 5, "lcmd"), ref)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def test_cli_npy_json(tmp_path, capsys):
    pool, train = _features(50, 4, 1).float(), _features(6, 4, 2).float()
    np.save(tmp_path / "pool.npy", pool.numpy())
    np.save(tmp_path / "train.npy", train.numpy())
    out = tmp_path / "sub" / "sel.json"
    rc = select_cli.main(
        [str(tmp_path / "pool.npy"), "--train", str(tmp_path / "train.npy"), "-b", "5",
         "-m", "lcmd", "--seed", "3", "-o", str(out)]
    )
    assert rc == 0
    expected = select_batch(pool, train, 5, "lcmd", seed=3).tolist()
    printed = capsys.readouterr().out.split()
    assert [int(v) for v in printed] == expected
    record = json.loads(out.read_text())
    assert record["indices"] == expected
    assert (record["method"], record["n_pool"], record["n_train"]) == ("lcmd", 50, 6)


def test_cli_npz_and_pt(tmp_path, capsys):
    pool, train = _features(30, 4, 3), _features(5, 4, 4)
    np.savez(tmp_path / "pool.npz", a=pool.numpy(), b=pool.numpy()[:3])
    torch.save({"structure_features": train, "energy": torch.zeros(5)}, tmp_path / "train.pt")
    args = [str(tmp_path / "pool.npz"), "--train", str(tmp_path / "train.pt"), "-b", "4",
            "-m", "max_dist"]
    assert select_cli.main(args) == 2  # ambiguous npz without --key
    assert "--key" in capsys.readouterr().err
    assert select_cli.main(args + ["--key", "a"]) == 0
    printed = [int(v) for v in capsys.readouterr().out.split()]
    assert printed == select_batch(pool, train, 4, "max_dist").tolist()


def test_cli_errors(tmp_path, capsys):
    assert select_cli.main([str(tmp_path / "missing.npy")]) == 2
    assert "not found" in capsys.readouterr().err
    np.save(tmp_path / "p.npy", np.zeros((4, 2)))
    assert select_cli.main([str(tmp_path / "p.npy"), "-b", "0"]) == 2
    assert "positive" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# ubmd select --model: from structures with a trained run's features
# --------------------------------------------------------------------------------------------
def test_cli_selects_structures_with_a_run(tiny_trained, cu_frames, tmp_path, capsys):
    """max_diag with a posterior model picks the pool structures of largest posterior variance,
    i.e. of largest total uncertainty reported by the model file's ASE calculator (all pool cells
    have the same atom count); max_det's first pick is the same structure; the written file holds
    the picked structures in selection order; lcmd/max_dist use --train; input errors exit 2."""
    from ase.io import read, write

    from conftest import emt_frames
    from ubmd.calculator import UBMDCalculator

    cfg, _ = tiny_trained
    run = cfg.output
    pool = emt_frames(12, seed=7, rattle=0.2)
    write(tmp_path / "pool.extxyz", pool)
    write(tmp_path / "train.extxyz", cu_frames)
    calc = UBMDCalculator(f"{run}/model.pt")
    u = []
    for a in pool:
        a = a.copy()
        a.calc = calc
        a.get_potential_energy()
        u.append(calc.results["uncertainty"])
    top = set(np.argsort(u)[::-1][:3].tolist())

    base = [str(tmp_path / "pool.extxyz"), "--model", run, "--train", str(tmp_path / "train.extxyz"),
            "-b", "3"]
    assert select_cli.main(base + ["-m", "max_diag"]) == 0
    picked = [int(i) for i in capsys.readouterr().out.split()]
    assert set(picked) == top

    out = tmp_path / "next.extxyz"
    assert select_cli.main(base + ["-m", "max_det", "--write-selected", str(out),
                                   "-o", str(tmp_path / "sel.json")]) == 0
    picked = [int(i) for i in capsys.readouterr().out.split()]
    assert len(set(picked)) == 3 and picked[0] == int(np.argmax(u))
    written = read(out, ":")
    assert [np.allclose(w.positions, pool[i].positions) for w, i in zip(written, picked)] == [True] * 3
    rec = json.loads((tmp_path / "sel.json").read_text())
    assert rec["indices"] == picked and rec["n_pool"] == 12 and rec["uncertainty"] == "posterior"

    for method in ("lcmd", "max_dist"):
        assert select_cli.main(base + ["-m", method]) == 0
        assert len(set(capsys.readouterr().out.split())) == 3
    # without --train: the run's own training data (kept with the run, even when it was
    # trained on frames passed in memory); a run whose config names none: an input error
    assert select_cli.main(base[:3] + ["-b", "3", "-m", "max_dist"]) == 0
    assert len(set(capsys.readouterr().out.split())) == 3
    import shutil

    import yaml

    bare = tmp_path / "bare_run"
    shutil.copytree(run, bare)
    c = yaml.safe_load((bare / "config.yaml").read_text())
    c["data"]["train"] = None
    (bare / "config.yaml").write_text(yaml.safe_dump(c))
    assert select_cli.main([str(tmp_path / "pool.extxyz"), "--model", str(bare), "-b", "3"]) == 2
    assert "give --train" in capsys.readouterr().err
    assert select_cli.main([str(tmp_path / "pool.extxyz"), "--model", str(tmp_path / "nope")]) == 2
    assert select_cli.main([str(tmp_path / "p.npy"), "--write-selected", str(out)]) == 2


def test_evenly_spaced_includes_first_and_last():
    from ubmd.selection import evenly_spaced

    assert evenly_spaced(5, 8) == [0, 1, 2, 3, 4]  # fewer than asked: all, in order
    assert evenly_spaced(101, 5) == [0, 25, 50, 75, 100]
    # the rounds of a learning curve (benchmarks: the models evaluated per campaign)
    assert evenly_spaced(1, 3) == [0]
    assert evenly_spaced(16, 5) == [0, 4, 8, 11, 15]
    assert evenly_spaced(2, 2) == [0, 1]
    assert evenly_spaced(7, 1) == [0] and evenly_spaced(0, 3) == []
    with pytest.raises(ValueError, match="count >= 1"):
        evenly_spaced(5, 0)
