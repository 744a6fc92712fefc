"""Wall time of the batch-selection methods on a large pool.

Times ``max_det``, ``lcmd``, ``max_dist`` and ``max_diag`` (:func:`ubmd.selection.select_batch`)
on a random ``n_pool x K`` pool (default 10^5 x 512) with 500 training points, for B = 8 and 64,
in float32 and float64; reports the median of ``--repeats`` runs (after one untimed warm-up per
dtype), prints a table and writes ``benchmarks/results/selection_speed.json``.

    python -m benchmarks.selection_speed [--n-pool 100000] [--dim 512] [--n-train 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from ubmd.selection import select_batch

from . import RESULTS

METHODS = ("max_det", "lcmd", "max_dist", "max_diag")
GOAL_S = 5.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-pool", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--n-train", type=int, default=500)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 64])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "-o", "--output", default=str(RESULTS / "selection_speed.json")
    )
    ns = p.parse_args(argv)

    g = torch.Generator().manual_seed(0)
    pool64 = torch.randn(ns.n_pool, ns.dim, generator=g, dtype=torch.float64)
    train64 = torch.randn(ns.n_train, ns.dim, generator=g, dtype=torch.float64)
    rows = []
    for dtype in (torch.float32, torch.float64):
        pool, train = pool64.to(dtype), train64.to(dtype)
        select_batch(pool[:1000], train, 8, "max_det")  # warm-up (thread pools, allocator)
        for b in ns.batch_sizes:
            for method in METHODS:
                times = []
                for _ in range(ns.repeats):
                    t0 = time.perf_counter()
                    idx = select_batch(pool, train, b, method)
                    times.append(time.perf_counter() - t0)
                assert idx.numel() == b and len(set(idx.tolist())) == b
                rows.append(
                    {
                        "method": method,
                        "dtype": str(dtype).replace("torch.", ""),
                        "batch_size": b,
                        "median_s": statistics.median(times),
                        "times_s": times,
                    }
                )
                r = rows[-1]
                print(
                    f"{method:9s} {r['dtype']:8s} B={b:<4d} median {r['median_s']:7.3f} s"
                    f"{'' if r['median_s'] < GOAL_S else '   (over the 5 s goal)'}",
                    flush=True,
                )
        del pool, train

    print(f"\npool {ns.n_pool} x {ns.dim}, train {ns.n_train}, medians of {ns.repeats} (s)")
    header = f"{'method':10s}" + "".join(
        f"{d + ' B=' + str(b):>16s}" for d in ("float32", "float64") for b in ns.batch_sizes
    )
    print(header)
    for method in METHODS:
        line = f"{method:10s}"
        for d in ("float32", "float64"):
            for b in ns.batch_sizes:
                (r,) = [
                    r for r in rows if (r["method"], r["dtype"], r["batch_size"]) == (method, d, b)
                ]
                line += f"{r['median_s']:16.3f}"
        print(line)

    out = Path(ns.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "selection_speed",
        "n_pool": ns.n_pool,
        "feature_dim": ns.dim,
        "n_train": ns.n_train,
        "repeats": ns.repeats,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "goal_s": GOAL_S,
        "load_average_1_5_15": list(os.getloadavg()),  # other processes skew the timings
        "results": rows,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
