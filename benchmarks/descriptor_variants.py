"""Measured evidence for the descriptor proposals in benchmarks/NOTES.md (not product code).

``GaussianMomentsFlat`` computes exactly the same descriptor as ``ubmd.model.GaussianMoments``
(checked to rounding below) but
  1. replaces every advanced-indexing gather (``a1[:, p0]``, ``tr3[:, t0, t1, t2]``,
     ``g5[:, :, p0, p1]``) by one dense contraction (bmm / einsum of the full [nr, nr] products)
     followed by ``index_select`` on a flattened dimension with precomputed flat indices (the
     backward of advanced indexing is ``index_put_(accumulate=True)``, the single largest kernel
     in ``perf``; the backward of ``index_select`` is a dense ``index_add``);
  2. skips the stable ``argsort`` of the centres when the edges are already grouped by centre
     (LAMMPS' ``build_graph`` and ``neighbour_list`` emit them sorted).
The scripted FeatureModel with either descriptor is timed on the same graph: forward, backward
of E, backward of the bias (v . sum phi), as in the C++ core.

    python benchmarks/descriptor_variants.py [--system cual] [--dtype float32] [--natoms 1000]

Writes benchmarks/results/descriptor_variants.json.
"""

from __future__ import annotations

import argparse
import math
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import md_speed as M  # noqa: E402
from ubmd.uncertainty.features import FeatureModel  # noqa: E402
from ubmd.model import MLIP, GaussianMoments  # noqa: E402


class GaussianMomentsFlat(GaussianMoments):
    def __init__(self, n_species: int, cutoff: float, n_radial: int = 8, n_basis: int = 12):
        super().__init__(n_species, cutoff, n_radial, n_basis)
        nr = n_radial
        p = self.pairs
        t = self.triples
        self.register_buffer("pair_flat", p[:, 0] * nr + p[:, 1])
        self.register_buffer("triple_flat", (t[:, 0] * nr + t[:, 1]) * nr + t[:, 2])
        self.register_buffer("sqrt_mult2", self.mult2.double().sqrt())
        self.register_buffer("sqrt_mult3", self.mult3.double().sqrt())

    def forward(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_centres: int) -> Tensor:

        i = edge_index[0]
        j = edge_index[1]
        nr = self.n_radial
        r = torch.sqrt((edge_vec * edge_vec).sum(-1) + 1e-30)
        u = edge_vec / r.unsqueeze(-1)
        fcut = 0.5 * (torch.cos(math.pi * r / self.cutoff) + 1.0)
        fcut = torch.where(r < self.cutoff, fcut, torch.zeros_like(fcut))
        basis = torch.exp(-(((r.unsqueeze(-1) - self.centres) / self.width) ** 2)) * fcut.unsqueeze(-1)
        ns = self.n_species
        w = self.radial_weights.permute(1, 0, 2).reshape(self.n_basis, ns * ns * nr)
        allpairs = (basis @ w).view(-1, ns * ns, nr)
        pair = (species[i] * ns + species[j]).view(-1, 1, 1).expand(-1, 1, nr)
        radial = allpairs.gather(1, pair).squeeze(1)
        x, y, z = u[:, 0], u[:, 1], u[:, 2]
        ang = torch.stack(
            [torch.ones_like(x), x, y, z,
             x * x, y * y, z * z, x * y, x * z, y * z,
             x * x * x, y * y * y, z * z * z, x * x * y, x * x * z, x * y * y, y * y * z,
             x * z * z, y * z * z, x * y * z], dim=-1)
        flat, n_slots = self.slot_index(i, n_centres)
        rpad = torch.zeros(n_centres * n_slots, nr, dtype=edge_vec.dtype, device=edge_vec.device)
        rpad = rpad.index_copy(0, flat, radial).view(n_centres, n_slots, nr)
        apad = torch.zeros(n_centres * n_slots, 20, dtype=edge_vec.dtype, device=edge_vec.device)
        apad = apad.index_copy(0, flat, ang).view(n_centres, n_slots, 20)
        a = torch.bmm(rpad.transpose(1, 2), apad)  # [n, nr, 20]
        n = n_centres
        a0 = a[:, :, 0]
        a1 = a[:, :, 1:4]
        a2s = a[:, :, 4:10] * self.sqrt_mult2
        a3s = a[:, :, 10:20] * self.sqrt_mult3
        # all [nr, nr] Gram matrices in one bmm each, then the a <= b entries by flat index
        g1 = torch.bmm(a1, a1.transpose(1, 2)).reshape(n, nr * nr).index_select(1, self.pair_flat)
        g2 = torch.bmm(a2s, a2s.transpose(1, 2)).reshape(n, nr * nr).index_select(1, self.pair_flat)
        g3 = torch.bmm(a3s, a3s.transpose(1, 2)).reshape(n, nr * nr).index_select(1, self.pair_flat)
        xx, yy, zz, xy, xz, yz = a[:, :, 4:10].unbind(-1)
        a2 = torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], dim=-1).view(n, nr, 3, 3)
        m_ab = torch.einsum("naij,nbjk->nabik", a2, a2)
        tr3 = torch.einsum("nabik,ncki->nabc", m_ab, a2)
        g4 = tr3.reshape(n, nr * nr * nr).index_select(1, self.triple_flat)
        a2a1 = torch.einsum("nbij,ncj->nbci", a2, a1)
        g5full = torch.einsum("nai,nbci->nbac", a1, a2a1)  # [n, b, a, c]
        g5 = g5full.reshape(n, nr, nr * nr).index_select(2, self.pair_flat)
        return torch.cat([a0, g1, g2, g3, g4, g5.reshape(n, -1)], dim=-1)


class _Atomic(torch.nn.Module):
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
    scripted = torch.jit.load(str(M.model_path(ns.system, ns.dtype)))
    sd = getattr(scripted.features.members, "0").state_dict()
    zs = sorted(znum[el] for el in M.ELEMENTS[ns.system])
    base = MLIP(zs, M.CUTOFF[ns.system], 8, 12, list(M.HIDDEN)).to(dt)
    base.load_state_dict(sd)
    flat = MLIP(zs, M.CUTOFF[ns.system], 8, 12, list(M.HIDDEN)).to(dt)
    flat.descriptor = GaussianMomentsFlat(len(zs), M.CUTOFF[ns.system]).to(dt)
    flat.load_state_dict(sd, strict=False)
    fms = {"current": torch.jit.script(_Atomic(FeatureModel([base.eval()], "last_layer"))),
           "flat_index_select": torch.jit.script(_Atomic(FeatureModel([flat.eval()], "last_layer")))}
    atoms = M.build_system(ns.system, ns.natoms)
    i, j, s = neighbour_list(atoms.get_positions(), np.asarray(atoms.get_cell()), True,
                             M.CUTOFF[ns.system])
    ev0 = torch.tensor(atoms.get_positions()[j] - atoms.get_positions()[i]
                       + s @ np.asarray(atoms.get_cell()), dtype=dt)
    ei = torch.tensor(np.stack([i, j]))
    smap = {z: k for k, z in enumerate(zs)}
    sp = torch.tensor([smap[int(z)] for z in atoms.numbers])
    n = len(atoms)
    v = torch.randn(66 - 1, dtype=dt) / n

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
    _, e0, ge0, gu0 = step(fms["current"])
    _, e1, ge1, gu1 = step(fms["flat_index_select"])
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
    ratio = rows["flat_index_select"]["cpu_total"] / rows["current"]["cpu_total"]
    print(f"flat/current CPU time of a biased model evaluation: {ratio:.3f}  load {M.load_average()}")
    out = {"benchmark": "descriptor_variants", **M.machine_info(), "system": ns.system,
           "dtype": ns.dtype, "natoms": n, "n_edges": int(ei.shape[1]), "max_rel_diff": err,
           "results": rows, "cpu_ratio_flat_over_current": ratio, "load": M.load_average()}
    path = M.RESULTS / "descriptor_variants.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    runs = old.get("runs", []) if isinstance(old, dict) else []
    runs = [r for r in runs if (r["system"], r["dtype"], r["natoms"]) != (ns.system, ns.dtype, n)]
    path.write_text(json.dumps({"runs": runs + [out]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
