"""How much do ensemble members differ, and what does averaging more of them give? (issue: foundation)

Loads the members (``members.pt``) of one or more ``benchmarks.ala2_accuracy`` runs, predicts
the 600 K test set once per member (float64) and reports the energy / force RMSE of every single
member, of each run's full ensemble, of all members together, and the range over every subset of
``--subset-size`` members. Writes benchmarks/results/<--results>.

    python -m benchmarks.ala2_member_mix /tmp/acc/final4_c6 /tmp/acc/final4_c6_nb9
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

from ubmd import keys as K
from ubmd.data import GraphDataset, collate, species_map_from
from ubmd.model import load_members
from ubmd.prediction import predict

from . import RESULTS
from .ala2_accuracy import draw_sets


def main(args=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("runs", nargs="+", help="--out directories of benchmarks.ala2_accuracy runs")
    p.add_argument("--seed", type=int, default=0, help="the seed those runs used")
    p.add_argument("--subset-size", type=int, default=4)
    p.add_argument("--results", default="ala2_member_mix.json")
    a = p.parse_args(args)
    torch.set_num_threads(1)
    _, chosen, test = draw_sets(a.seed)
    sm = species_map_from(chosen)
    preds, ref = {}, None
    for run in a.runs:
        members = load_members(Path(run) / "members.pt")
        batch = collate(GraphDataset(test, members[0].cutoff, sm).graphs)
        ref = batch
        for k, m in enumerate(members):
            out = predict(m, batch, virial=False)
            preds[f"{Path(run).name}[{k}]"] = (out[K.ENERGY].detach(), out[K.FORCES].detach())

    def rmse(keys) -> tuple[float, float]:
        e = sum(preds[k][0] for k in keys) / len(keys)
        f = sum(preds[k][1] for k in keys) / len(keys)
        de = (e - ref[K.ENERGY]) / ref[K.N_ATOMS].to(e.dtype)
        return 1000 * float(de.pow(2).mean().sqrt()), float((f - ref[K.FORCES]).pow(2).mean().sqrt())

    names = list(preds)
    rows = {k: rmse([k]) for k in names}
    for run in a.runs:
        tag = Path(run).name
        rows[f"{tag} (all)"] = rmse([k for k in names if k.startswith(tag + "[")])
    rows["all members"] = rmse(names)
    subsets = [rmse(s) for s in itertools.combinations(names, a.subset_size)]
    print(f"{'members':32s} {'E (meV/atom)':>12s} {'F (eV/Å)':>9s}")
    for k, (e, f) in rows.items():
        print(f"{k:32s} {e:12.3f} {f:9.4f}")
    es, fs = [s[0] for s in subsets], [s[1] for s in subsets]
    print(f"{len(subsets)} subsets of {a.subset_size}: E {min(es):.3f}-{max(es):.3f}, "
          f"F {min(fs):.4f}-{max(fs):.4f}; both bars met by "
          f"{sum(e <= 1.5 and f <= 0.06 for e, f in subsets)}")
    out = {"runs": a.runs, "test": "last 200 frames of ala2_gfn2_600K.extxyz",
           "columns": "energy RMSE meV/atom, force RMSE eV/A", "rows": rows,
           "subsets": {"size": a.subset_size, "n": len(subsets), "energy_range": [min(es), max(es)],
                       "forces_range": [min(fs), max(fs)],
                       "n_meeting_both_bars": sum(e <= 1.5 and f <= 0.06 for e, f in subsets)}}
    (RESULTS / a.results).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
