"""Probe: does a least-squares refit of the output layer move the accuracy bar? (issue: foundation)

Takes a run of ``benchmarks.ala2_accuracy`` (its ``--out`` directory, which holds
``members.pt``), rebuilds the same training / validation / test sets, and refits each member's
output layer (w, b) -- in which energies and forces are linear -- by ridge least squares on

    w_E * sum_s (E_s - Phi_s . w)^2 + w_F * sum_{s,a,c} (F_sac - J_sac . w)^2 + rho * |w - w0|^2,

Phi_s = sum_{i in s} scale_Zi * x~_L,i (the last-layer inputs), J = -dPhi/dR (forward-mode AD, one
pass per atom coordinate). It prints energy / force RMSE of the ensemble mean on the three sets
for a grid of energy weights w_E (w_F = 4 as in training) and ridge strengths rho, and writes
benchmarks/results/<--results>.

    python -m benchmarks.ala2_refit_probe /tmp/acc/final4_c6
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.func import jvp

from ubmd import keys as K
from ubmd.data import GraphDataset, species_map_from, split_indices
from ubmd.model import load_members
from ubmd.prediction import edge_vectors

from . import RESULTS
from .ala2_accuracy import N_VALID, draw_sets


def last_layer_system(member, data: GraphDataset, batch_size: int = 100):
    """Phi [S, d], J [3N, d] (forces = J @ w), the shift energies [S], E_ref [S], F_ref [3N], n_atoms [S]."""
    parts = []
    for b in data.batches(batch_size):
        ei, sp, pos = b[K.EDGE_INDEX], b[K.SPECIES], b[K.POSITIONS]
        n, nb = pos.shape[0], int(b[K.N_ATOMS].shape[0])

        def phi_of(p):
            bb = dict(b)
            bb[K.POSITIONS] = p
            desc = member.descriptor(edge_vectors(bb), ei, sp, n)
            _, x = member.readout_last_layer(desc, sp)
            return torch.zeros(nb, x.shape[1], dtype=x.dtype).index_add(0, b[K.BATCH], x)

        starts = torch.cumsum(b[K.N_ATOMS], 0) - b[K.N_ATOMS]
        local = torch.arange(n) - starts[b[K.BATCH]]
        with torch.no_grad():
            phi = phi_of(pos)
            cols = torch.zeros(nb, int(b[K.N_ATOMS].max()), 3, phi.shape[1], dtype=phi.dtype)
            for a in range(cols.shape[1]):
                for c in range(3):
                    t = torch.zeros_like(pos)
                    t[local == a, c] = 1.0
                    cols[:, a, c] = -jvp(phi_of, (pos,), (t,))[1]
        jac = cols[b[K.BATCH], local].reshape(3 * n, -1)  # rows in the order of forces.reshape(-1)
        e0 = torch.zeros(nb, dtype=pos.dtype).index_add(0, b[K.BATCH], member.species_shift[sp])
        parts.append((phi, jac, e0, b[K.ENERGY], b[K.FORCES].reshape(-1), b[K.N_ATOMS]))
    return [torch.cat(z) for z in zip(*parts)]


def output_weights(member) -> torch.Tensor:
    last = member.layers[-1]
    return torch.cat([last.weight.detach().reshape(-1), last.bias.detach().reshape(-1)])


def ensemble_errors(systems, weights) -> tuple[float, float]:
    """(energy RMSE in meV/atom, force RMSE in eV/Å) of the mean of the members."""
    e = sum(s[0] @ w + s[2] for s, w in zip(systems, weights)) / len(weights)
    f = sum(s[1] @ w for s, w in zip(systems, weights)) / len(weights)
    _, _, _, e_ref, f_ref, n_atoms = systems[0]
    de = (e - e_ref) / n_atoms.to(e.dtype)
    return 1000 * float(de.pow(2).mean().sqrt()), float((f - f_ref).pow(2).mean().sqrt())


def refit(system, w0: torch.Tensor, w_energy: float, w_forces: float, rho: float) -> torch.Tensor:
    phi, jac, e0, e_ref, f_ref, _ = system
    a = w_energy * phi.T @ phi + w_forces * jac.T @ jac
    rhs = w_energy * phi.T @ (e_ref - e0) + w_forces * jac.T @ f_ref
    lam = rho * 1e-3 * a.diagonal().mean()  # rho relative to the mean curvature
    return torch.linalg.solve(a + lam * torch.eye(a.shape[0], dtype=a.dtype), rhs + lam * w0)


def main(args=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run", help="--out directory of a benchmarks.ala2_accuracy run")
    p.add_argument("--seed", type=int, default=0, help="the seed that run used")
    p.add_argument("--n-train", type=int, default=500)
    p.add_argument("--energy-weights", type=float, nargs="+", default=[1, 10, 100, 1000])
    p.add_argument("--rhos", type=float, nargs="+", default=[1e-4, 1e-2, 1, 100])
    p.add_argument("--results", default="ala2_refit_probe.json")
    a = p.parse_args(args)
    torch.set_num_threads(1)
    _, chosen, test = draw_sets(a.seed, a.n_train)
    members = load_members(Path(a.run) / "members.pt")
    for m in members:
        m.requires_grad_(False)
    sm = species_map_from(chosen)
    data = GraphDataset(chosen, members[0].cutoff, sm)
    split = split_indices(len(data), N_VALID / len(chosen), 0, a.seed)
    sets = {"train": data.subset(split.train), "valid": data.subset(split.valid),
            "test600": GraphDataset(test, members[0].cutoff, sm)}
    t0 = time.perf_counter()
    systems = {k: [last_layer_system(m, d) for m in members] for k, d in sets.items()}
    jac_s = time.perf_counter() - t0
    w0 = [output_weights(m) for m in members]
    rows = [{"w_energy": None, "rho": None, **{k: ensemble_errors(s, w0) for k, s in systems.items()}}]
    for we in a.energy_weights:
        for rho in a.rhos:
            ws = [refit(s, w, we, 4.0, rho) for s, w in zip(systems["train"], w0)]
            rows.append({"w_energy": we, "rho": rho,
                         **{k: ensemble_errors(s, ws) for k, s in systems.items()}})
    print(f"{'w_E':>6s} {'rho':>7s} | " + " | ".join(f"{k:>17s}" for k in systems))
    for r in rows:
        head = "as trained" if r["w_energy"] is None else f"{r['w_energy']:6g} {r['rho']:7g}"
        print(f"{head:>14s} | " + " | ".join(f"{r[k][0]:7.3f} {r[k][1]:.4f}" for k in systems))
    print(f"Jacobians: {jac_s:.0f} s for {len(members)} members (forward-mode AD, 1 thread)")
    out = {"run": str(a.run), "n_members": len(members), "jacobian_s": jac_s,
           "columns": "energy RMSE meV/atom, force RMSE eV/A of the ensemble mean", "rows": rows}
    res = RESULTS / a.results
    res.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
