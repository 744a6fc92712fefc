"""Which frames the batch selection takes from a campaign's candidate pools (issue #23: "which
frames enter the candidate pool and how selection weighs stop frames against sampled ones").

A walker's pool holds its periodically sampled frames (every ``walkers.sample_every`` steps) and
its crossing frames (``info['trigger']``: the frame where a calibrated atomic uncertainty crossed
the threshold, kept as a candidate whether the walker stopped there or was reflected). For every
round of every campaign directory given, this reads ``round_*/pool.extxyz`` and
``round_*/selected.extxyz`` and reports the crossing fraction of the pool and of the selected
batch and the median largest atomic uncertainty of both; per campaign the mean over rounds (all
rounds, and rounds >= ``--late``). Reads only; campaign archives (``ubmd.al.archive``) keep no
pools, so it needs the campaign directories themselves.

    python -m benchmarks.pool_selection runs/ala2_campaigns/uniform/*_s[0-9] --tag ala2_uniform
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from . import RESULTS
from .campaign_common import git_commit


def round_stats(round_dir: Path) -> dict | None:
    """Pool and selection statistics of one round (None if it has no pool or selection)."""
    from ase.io import read

    pool_file, sel_file = round_dir / "pool.extxyz", round_dir / "selected.extxyz"
    if not (pool_file.exists() and sel_file.exists()):
        return None
    pool, sel = read(pool_file, ":"), read(sel_file, ":")
    if not pool or not sel:
        return None

    def trig(frames):
        return np.array([bool(a.info.get("trigger", False)) for a in frames])

    def umax(frames):
        return np.array([float(a.info.get("max_atomic_uncertainty", np.nan)) for a in frames])

    tp, ts = trig(pool), trig(sel)
    return {"round": int(round_dir.name.split("_")[-1]), "pool": len(pool), "selected": len(sel),
            "pool_crossing_fraction": float(tp.mean()), "selected_crossing_fraction": float(ts.mean()),
            "pool_median_max_u": float(np.nanmedian(umax(pool))),
            "selected_median_max_u": float(np.nanmedian(umax(sel)))}


def campaign_stats(campaign: Path, late: int) -> dict:
    rows = [s for r in sorted(campaign.glob("round_*")) if (s := round_stats(r)) is not None]

    def mean(key, rs):
        return float(np.mean([r[key] for r in rs])) if rs else None
    out = {"campaign": campaign.name, "path": str(campaign), "rounds": rows}
    for name, rs in (("all", rows), ("late", [r for r in rows if r["round"] >= late])):
        out[name] = {k: mean(k, rs) for k in ("pool", "pool_crossing_fraction",
                                              "selected_crossing_fraction", "pool_median_max_u",
                                              "selected_median_max_u")}
        out[name]["n_rounds"] = len(rs)
    return out


def main(args=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("campaigns", type=Path, nargs="+", help="campaign directories")
    ap.add_argument("--late", type=int, default=7, help="first round of the 'late' summary")
    ap.add_argument("--tag", default="", help="suffix of the JSON file name")
    ap.add_argument("--json", type=Path, default=None,
                    help="JSON path (default benchmarks/results/pool_selection[_<tag>].json)")
    ns = ap.parse_args(args)
    res = {"benchmark": "pool_selection", "git_commit": git_commit(), "late_from_round": ns.late,
           "time": time.strftime("%Y-%m-%d %H:%M:%S"),
           "campaigns": [campaign_stats(c, ns.late) for c in ns.campaigns]}
    print(f"{'campaign':32s} | crossing fraction pool / selected (all rounds) | rounds >= {ns.late}"
          f" | median max u_i pool / selected (eV/Å)")
    for c in res["campaigns"]:
        a, lt = c["all"], c["late"]
        if not a["n_rounds"]:
            print(f"{c['campaign']:32s} | no rounds with a pool")
            continue
        print(f"{c['campaign']:32s} | {a['pool_crossing_fraction']:.2f} / "
              f"{a['selected_crossing_fraction']:.2f} ({a['n_rounds']} rounds)"
              f" | {lt['pool_crossing_fraction'] or 0:.2f} / {lt['selected_crossing_fraction'] or 0:.2f}"
              f" (pool {lt['pool'] or 0:.0f})"
              f" | {a['pool_median_max_u']:.2f} / {a['selected_median_max_u']:.2f}")
    out = ns.json or RESULTS / f"pool_selection{'_' + ns.tag if ns.tag else ''}.json"
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
