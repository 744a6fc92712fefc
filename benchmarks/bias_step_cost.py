"""Cost of an MD step, unbiased and with the sketched-feature bias, before and after two changes.

1. Descriptor (python/ubmd/model/descriptor.py): with 3+ species each edge takes its species pair's radial
   weights, instead of one GEMM of the radial basis to all S^2 pair channels followed by a pick
   whose gradient is a zero-filled [edges, S^2, n_radial] tensor. The model file carries the
   choice (``GaussianMoments.pair_gemm``), so both variants are exported from one model.
2. Bias (python/ubmd/uncertainty/features.py, cpp/ubmd_core.cpp): through the model's ``atomic_parts`` /
   ``feature_contraction`` a sketched layer contracts x~ U diag(v) V^T g (d_in d_out per atom)
   instead of back-propagating the per-atom projections x~ U and g V (K (d_in + d_out) per atom)
   where that is cheaper, and forms the feature sum as diag(U^T (sum_i x~_i g_i^T) V) on steps
   that need no per-atom features. ``UBMD_FEATURE_CONTRACTION=0`` makes the pair style use the
   per-atom features of ``atomic`` instead (the path before).

Variants: ``before`` (pair GEMM, per-atom path), ``pair_weights`` (change 1 only), ``after``
(both). All from the same build, interleaved (repeat x case x variant), median of the LAMMPS loop
times, one thread, float64 (the campaigns' export dtype).

Cases: alanine dipeptide (22 atoms, non-periodic) and MIL-53(Al) conventional cells replicated
to 152, 608 and 1216 atoms (both 4 species); untrained models of the campaigns' size (cutoff 5 Å,
8 radial functions, hidden [128, 128], K = 512, random posterior head: the cost does not depend
on training). Modes: ``none`` (``uncertainty none``), ``bias`` (bias forces, per-atom
uncertainties on every step, as the AL walkers run), ``bias_every10`` (bias forces on every
step, per-atom uncertainties every 10 steps: ``every 10``).

    python -m benchmarks.bias_step_cost [--quick]   -> benchmarks/results/bias_step_cost[_quick].json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from . import blas_binding as B
from . import md_speed as M

WORK = B.ROOT / "build" / "bench" / "bias_step_cost"
MODES = {"none": "uncertainty none", "bias": "bias_forces 0.25 window 2",
         "bias_every10": "bias_forces 0.25 window 2 every 10"}
# name: (structure, replication, elements, boundary, steps full, steps quick)
SYSTEMS = {
    "ala2": (B.ALA2, (1, 1, 1), ["H", "C", "N", "O"], "s s s", 1000, 100),
    "mil53_152": (B.MIL53, (2, 1, 1), ["H", "C", "O", "Al"], "p p p", 100, 10),
    "mil53_608": (B.MIL53, (2, 2, 2), ["H", "C", "O", "Al"], "p p p", 40, 5),
    "mil53_1216": (B.MIL53, (4, 2, 2), ["H", "C", "O", "Al"], "p p p", 20, 5),
}
# variant: (descriptor pair GEMM, UBMD_FEATURE_CONTRACTION)
VARIANTS = {"before": (True, "0"), "pair_weights": (False, "0"), "after": (False, None)}


def main(args=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps, one repeat, two systems")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--systems", nargs="+", default=None, choices=list(SYSTEMS))
    ap.add_argument("--tag", default="", help="suffix of the JSON file name")
    ns = ap.parse_args(args)
    repeats = ns.repeats or (1 if ns.quick else 3)
    systems = ns.systems or (["ala2", "mil53_152"] if ns.quick else list(SYSTEMS))
    lmp = str(Path(sys.executable).parent / "lmp")
    plugin = M.plugin_copy()
    WORK.mkdir(parents=True, exist_ok=True)
    for old in WORK.glob("*.pt"):   # exported by the code now checked out, not an older one
        old.unlink()

    jobs = []
    for system in systems:
        _, _, elements, boundary, steps_full, steps_quick = SYSTEMS[system]
        steps = steps_quick if ns.quick else steps_full
        data = B.write_data(WORK / f"{system}.data", system, SYSTEMS)
        tag = "ala2" if system == "ala2" else "mil53"
        for mode, style in MODES.items():
            variants = {}
            for name, (gemm, contraction) in VARIANTS.items():
                if mode == "none" and name == "pair_weights":
                    continue    # no bias: the contraction does not enter
                model = B.make_model(WORK / f"{tag}_sketch_{'gemm' if gemm else 'weights'}.pt",
                                     elements, "sketch", pair_gemm=gemm)
                d = WORK / f"in.{system}.{mode}.{'gemm' if gemm else 'weights'}.lmp"
                d.write_text(B.deck(plugin, data, model, elements, boundary, style, "float64",
                                    steps))
                variants[name] = (d, contraction)
            jobs.append({"system": system, "mode": mode, "steps": steps, "variants": variants})
    times = {(j["system"], j["mode"], v): [] for j in jobs for v in j["variants"]}
    logged = {}
    t0 = time.time()
    for rep in range(repeats):
        for j in jobs:
            for v, (deck, contraction) in j["variants"].items():
                log = WORK / f"{deck.stem}.{v}.{rep}.log"
                B.run_deck(lmp, deck, log, "UBMD_FEATURE_CONTRACTION", contraction)
                text = log.read_text() if log.exists() else ""
                logged[v] = next((ln.split(" through ")[1].strip() for ln in text.splitlines()
                                  if "bias gradient through" in ln), logged.get(v, "?"))
                ms, _ = B.loop_ms(log, j["steps"])
                if ms is not None:
                    times[(j["system"], j["mode"], v)].append(ms)

    med = {k: (statistics.median(t) if t else None) for k, t in times.items()}
    rows = []
    for j in jobs:
        row = {"system": j["system"], "mode": j["mode"], "steps": j["steps"]}
        for v in VARIANTS:
            row[f"ms_{v}"] = med.get((j["system"], j["mode"], v))
        b, a = row["ms_before"], row["ms_after"]
        row["before_over_after"] = b / a if a and b else None
        for v in VARIANTS:
            base = med.get((j["system"], "none", v if v != "pair_weights" else "after"))
            x = row[f"ms_{v}"]
            row[f"over_none_{v}"] = x / base if x and base and j["mode"] != "none" else None
        rows.append(row)

    f = B.fmt
    print(f"\nbias gradient path as the pair style logged it: {logged}\n")
    print(f"{'system':10s} {'mode':12s} | {'before':>8s} {'pair_w.':>8s} {'after':>8s} ms/step "
          f"{'ratio':>6s} | /none: {'before':>6s} {'after':>6s}")
    for r in rows:
        print(f"{r['system']:10s} {r['mode']:12s} | {f(r['ms_before']):>8s} "
              f"{f(r['ms_pair_weights']):>8s} {f(r['ms_after']):>8s}         "
              f"{f(r['before_over_after']):>6s} |        {f(r['over_none_before']):>6s} "
              f"{f(r['over_none_after']):>6s}")
    out = M.RESULTS / f"bias_step_cost{'_quick' if ns.quick else ''}{ns.tag}.json"
    out.write_text(json.dumps({"benchmark": "bias_step_cost", **M.machine_info(),
                               "repeats": repeats, "variants": VARIANTS, "paths_logged": logged,
                               "wall_s": time.time() - t0, "rows": rows}, indent=1))
    print(f"\nwrote {out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
