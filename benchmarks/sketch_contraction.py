"""Cost of the bias with sketched gradient features: per-atom projections against U diag(v) V^T.

The bias needs the gradient of v . sum_i phi_i. Through the model's ``atomic_parts`` /
``feature_contraction`` (python/ubmd/features.py) a sketched layer contracts x~ M g with
M = U diag(v) V^T (d_in d_out per atom, d_in K d_out once) instead of back-propagating the
per-atom projections x~ U and g V (K (d_in + d_out) per atom), and forms the feature sum as
diag(U^T (sum_i x~_i g_i^T) V) when no per-atom features are needed on the step. Each layer takes
the cheaper route for the atoms of the process (``ubmd.features.matrix_route_cheaper``).
``UBMD_FEATURE_CONTRACTION=0`` makes the pair style use the per-atom features of ``atomic``
instead (the path before), so both run from the same build, interleaved (repeat x case x path),
median of the LAMMPS loop times, one thread.

Cases: alanine dipeptide (22 atoms, non-periodic) and MIL-53(Al) conventional cells replicated
to 152, 608 and 1216 atoms; untrained models of the campaigns' size (cutoff 5 Å, 8 radial
functions, hidden [128, 128], K = 512, float64, random posterior head: cost does not depend on
training). Modes: ``none`` (``uncertainty none``), ``bias`` (bias forces, per-atom
uncertainties on every step, as the AL walkers run), ``bias_every10`` (bias forces on every
step, per-atom uncertainties every 10 steps: ``every 10``); last-layer features with ``bias``
as a control.

    python benchmarks/sketch_contraction.py [--quick]  -> benchmarks/results/sketch_contraction[_quick].json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blas_binding as B  # noqa: E402
import md_speed as M  # noqa: E402

WORK = B.ROOT / "build" / "bench" / "contraction"
MODES = {"none": "uncertainty none", "bias": "bias_forces 0.25 window 2",
         "bias_every10": "bias_forces 0.25 window 2 every 10"}
# name: (structure, replication, elements, boundary, steps full, steps quick)
SYSTEMS = {
    "ala2": (B.ALA2, (1, 1, 1), ["H", "C", "N", "O"], "s s s", 1000, 100),
    "mil53_152": (B.MIL53, (2, 1, 1), ["H", "C", "O", "Al"], "p p p", 100, 10),
    "mil53_608": (B.MIL53, (2, 2, 2), ["H", "C", "O", "Al"], "p p p", 40, 5),
    "mil53_1216": (B.MIL53, (4, 2, 2), ["H", "C", "O", "Al"], "p p p", 20, 5),
}
PATHS = ("contraction", "per_atom")


def main(args=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps, one repeat, two systems")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--systems", nargs="+", default=None, choices=list(SYSTEMS))
    ns = ap.parse_args(args)
    repeats = ns.repeats or (1 if ns.quick else 3)
    systems = ns.systems or (["ala2", "mil53_152"] if ns.quick else list(SYSTEMS))
    lmp = str(Path(sys.executable).parent / "lmp")
    plugin = M.plugin_copy()
    WORK.mkdir(parents=True, exist_ok=True)

    jobs = []
    for system in systems:
        _, _, elements, boundary, steps_full, steps_quick = SYSTEMS[system]
        steps = steps_quick if ns.quick else steps_full
        data = B.write_data(WORK / f"{system}.data", system, SYSTEMS)
        tag = "ala2" if system == "ala2" else "mil53"
        cases = [("sketch", m) for m in MODES] + [("last_layer", "bias")]
        for kind, mode in cases:
            model = B.make_model(WORK / f"{tag}_{kind}.pt", elements, kind)
            d = WORK / f"in.{system}.{kind}.{mode}.lmp"
            d.write_text(B.deck(plugin, data, model, elements, boundary, MODES[mode], "float64",
                                steps))
            paths = PATHS if mode != "none" else ("contraction",)
            jobs.append({"system": system, "features": kind, "mode": mode, "steps": steps,
                         "deck": d, "paths": paths})
    times = {(j["deck"], p): [] for j in jobs for p in j["paths"]}
    logged = {}
    t0 = time.time()
    for rep in range(repeats):
        for j in jobs:
            for p in j["paths"]:
                log = WORK / f"{j['deck'].stem}.{p}.{rep}.log"
                B.run_deck(lmp, j["deck"], log, "UBMD_FEATURE_CONTRACTION",
                           "0" if p == "per_atom" else None)
                text = log.read_text() if log.exists() else ""
                logged[p] = next((ln.split(" through ")[1].strip() for ln in text.splitlines()
                                  if "bias gradient through" in ln), logged.get(p, "?"))
                ms, _ = B.loop_ms(log, j["steps"])
                if ms is not None:
                    times[(j["deck"], p)].append(ms)

    rows = []
    for j in jobs:
        med = {p: (statistics.median(times[(j["deck"], p)]) if times.get((j["deck"], p)) else None)
               for p in j["paths"]}
        row = {k: j[k] for k in ("system", "features", "mode", "steps")}
        row |= {f"ms_per_step_{p}": med.get(p) for p in PATHS}
        a, b = med.get("per_atom"), med.get("contraction")
        row["per_atom_over_contraction"] = a / b if a and b else None
        rows.append(row)
    by = {(r["system"], r["features"], r["mode"]): r for r in rows}
    for r in rows:
        base = by.get((r["system"], "sketch", "none"), {}).get("ms_per_step_contraction")
        for p in PATHS:
            v = r[f"ms_per_step_{p}"]
            r[f"over_none_{p}"] = v / base if v and base and r["mode"] != "none" else None

    def f(v, p=2):
        return "-" if v is None else f"{v:.{p}f}"

    print(f"\npaths as the pair style logged them: {logged}\n")
    print(f"{'system':10s} {'features':10s} {'mode':12s} | {'ms/step contr.':>14s} "
          f"{'ms/step per-atom':>16s} {'ratio':>6s} | {'/none contr.':>12s} {'/none per-atom':>14s}")
    for r in rows:
        print(f"{r['system']:10s} {r['features']:10s} {r['mode']:12s} | "
              f"{f(r['ms_per_step_contraction']):>14s} {f(r['ms_per_step_per_atom']):>16s} "
              f"{f(r['per_atom_over_contraction']):>6s} | {f(r['over_none_contraction']):>12s} "
              f"{f(r['over_none_per_atom']):>14s}")
    out = M.RESULTS / f"sketch_contraction{'_quick' if ns.quick else ''}.json"
    out.write_text(json.dumps({"benchmark": "sketch_contraction", **M.machine_info(),
                               "repeats": repeats, "paths_logged": logged,
                               "wall_s": time.time() - t0, "rows": rows}, indent=1))
    print(f"\nwrote {out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
