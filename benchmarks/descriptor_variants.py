"""Measured evidence for the descriptor proposals in benchmarks/NOTES.md (P2, P10).

The descriptor is ubmd's own (``ubmd.model.GaussianMoments``); its variants are the choices the
package offers, compared on the same graph with the same weights: here the route of the radial
species-pair mixing (``pair_gemm``): one GEMM of the radial basis to all S^2 pair channels and a
pick of the edge's pair (``pair_gemm``), or a batched product with each edge's own pair weights
(``pair_weights``); ``GaussianMoments`` picks the GEMM up to two species. (P2's flat
``index_select`` gathers, measured here first against advanced indexing, are the descriptor's
own since the P2 rewrite.) Both variants must give the same numbers (checked to rounding). The
scripted FeatureModel with either descriptor is timed on the same graph: forward, backward of E,
backward of the bias (v . sum phi), as in the C++ core; CPU time, interleaved, median of
``--repeats``.

    python -m benchmarks.descriptor_variants [--system cual] [--dtype float32] [--natoms 1000]

Needs the models of ``python -m benchmarks.md_speed prepare``. Writes
benchmarks/results/descriptor_variants.json (one run per system, dtype and size).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from torch import Tensor

from ubmd.uncertainty.features import FeatureModel

from . import md_speed as M

VARIANTS = {"pair_gemm": True, "pair_weights": False}


class Atomic(torch.nn.Module):
    """Scriptable wrapper: forward = FeatureModel.atomic(..., with_features=True)."""

    def __init__(self, fm: FeatureModel):
        super().__init__()
        self.fm = fm

    def forward(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n: int):
        return self.fm.atomic(edge_vec, edge_index, species, n, True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", default="cual", choices=["cual", "mil53"])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--natoms", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=7)
    ns = p.parse_args(argv)
    import numpy as np
    from ase.data import atomic_numbers as znum

    from ubmd.neighbours import neighbour_list

    torch.set_num_threads(1)
    dt = getattr(torch, ns.dtype)
    zs = sorted(znum[el] for el in M.ELEMENTS[ns.system])
    fms = {name: torch.jit.script(Atomic(FeatureModel([M.eager_member(ns.system, ns.dtype, gemm)],
                                                      "last_layer")))
           for name, gemm in VARIANTS.items()}
    atoms = M.build_system(ns.system, ns.natoms)
    i, j, s = neighbour_list(atoms.get_positions(), np.asarray(atoms.get_cell()), True,
                             M.CUTOFF[ns.system])
    ev0 = torch.tensor(atoms.get_positions()[j] - atoms.get_positions()[i]
                       + s @ np.asarray(atoms.get_cell()), dtype=dt)
    ei = torch.tensor(np.stack([i, j]))
    smap = {z: k for k, z in enumerate(zs)}
    sp = torch.tensor([smap[int(z)] for z in atoms.numbers])
    n = len(atoms)
    v = torch.randn(M.HIDDEN[-1] + 1, dtype=dt) / n

    def step(fm):
        ev = ev0.clone().requires_grad_(True)
        t0 = time.perf_counter()
        e, phi = fm(ev, ei, sp, n)
        t1 = time.perf_counter()
        (ge,) = torch.autograd.grad(e.sum(), ev, retain_graph=True)
        t2 = time.perf_counter()
        (gu,) = torch.autograd.grad((phi.sum(0) * v).sum(), ev)
        t3 = time.perf_counter()
        return {"forward": t1 - t0, "backward_E": t2 - t1, "backward_u": t3 - t2,
                "total": t3 - t0}, e.detach(), ge, gu

    # same numbers
    first, second = list(fms)
    _, e0, ge0, gu0 = step(fms[first])
    _, e1, ge1, gu1 = step(fms[second])
    tol = 1e-4 if ns.dtype == "float32" else 1e-10
    err = {k: float((a - b).abs().max() / b.abs().max()) for k, a, b in
           (("energies", e1, e0), ("forces_edge_grad", ge1, ge0), ("bias_edge_grad", gu1, gu0))}
    print("max relative differences:", err)
    assert all(x < tol for x in err.values()), err
    for fm in fms.values():  # warm-up of the profiling executor
        for _ in range(2):
            step(fm)
    samples = {k: [] for k in fms}
    for _ in range(ns.repeats):  # interleaved
        for k, fm in fms.items():
            c0 = time.process_time()
            t, *_ = step(fm)
            t["cpu_total"] = time.process_time() - c0
            samples[k].append(t)
    rows = {}
    for k, ss in samples.items():
        rows[k] = {q: statistics.median(x[q] for x in ss) for q in ss[0]}
        print(f"{k:18s} " + " ".join(f"{q}={v * 1e3:.1f}ms" for q, v in rows[k].items()))
    ratio = rows[second]["cpu_total"] / rows[first]["cpu_total"]
    print(f"{second}/{first} CPU time of a biased model evaluation: {ratio:.3f}  "
          f"load {M.load_average()}")
    out = {"benchmark": "descriptor_variants", **M.machine_info(), "system": ns.system,
           "dtype": ns.dtype, "natoms": n, "n_edges": int(ei.shape[1]), "variants": VARIANTS,
           "max_rel_diff": err, "results": rows, f"cpu_ratio_{second}_over_{first}": ratio,
           "load": M.load_average()}
    path = M.RESULTS / "descriptor_variants.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    runs = old.get("runs", []) if isinstance(old, dict) else []
    runs = [r for r in runs if (r["system"], r["dtype"], r["natoms"]) != (ns.system, ns.dtype, n)]
    path.write_text(json.dumps({"runs": runs + [out]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
