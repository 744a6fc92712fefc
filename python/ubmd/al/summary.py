"""What a campaign says about itself: a round's ``summary.json`` (timings of each stage, errors,
calibration, walker stops, coverage), its one-line log entry, and ``campaign.json`` (all rounds).
Built from the stage marks on disk, so it can be rewritten at any time."""

from __future__ import annotations

import math

import numpy as np

from .layout import CampaignLayout, RoundLayout


def coverage(layout: CampaignLayout, r: int, dihedrals: dict | None) -> dict | None:
    """Dihedral-plane coverage of the walkers' traces: round ``r`` alone and rounds 0..r."""
    if not dihedrals:
        return None
    from ..analysis.coverage import coverage_by_round

    points = {}
    for q in range(r + 1):
        walkers = []
        for tr in layout.round(q).walker_traces():
            d = np.load(tr)
            if "cvs" in d and len(d["cvs"]):
                walkers.append(d["cvs"])
        if walkers:
            points[q] = walkers
    if not points:
        return None
    res = coverage_by_round(points)
    key = str(max(points))
    return {"this_round": res["per_round"][key], "cumulative": res["cumulative"][key]}


def round_summary(cfg, layout: CampaignLayout, rl: RoundLayout, last: bool) -> dict:
    """The round's summary from its stage marks."""
    lab, tr = rl.info("label"), rl.info("train")
    smp, sel = rl.info("sample"), rl.info("select")
    return {
        "round": rl.index, "last": last, "labels_used": layout.labels_used(rl.index),
        "label_budget": cfg.label_budget, "n_dataset": lab.get("n_dataset"),
        "n_new_labels": lab.get("n_labelled"), "n_failed": lab.get("n_failed"),
        "n_dropped": lab.get("n_dropped"),
        "timings_s": {"reference": lab.get("reference_s"), "reference_wall": lab.get("wall_s"),
                      "training": tr.get("wall_s"), "sampling": smp.get("wall_s"),
                      "selection": sel.get("wall_s")},
        "errors_valid": tr.get("errors_valid"), "errors_train": tr.get("errors_train"),
        "calibration": tr.get("calibration"), "quality_total": tr.get("quality_total"),
        "quality_atomic": tr.get("quality_atomic"),
        "engine": smp.get("engine"), "walkers": smp.get("walkers"), "n_pool": smp.get("n_pool"),
        "threshold": smp.get("threshold"),
        "n_selected": sel.get("n_selected"),
        "coverage": coverage(layout, rl.index, cfg.dihedrals) if not last else None,
    }


def campaign_record(layout: CampaignLayout, r: int, finished: bool) -> dict:
    """``campaign.json``: whether the campaign finished, and the summaries of rounds 0..r."""
    rounds = [layout.round(q).read_summary() for q in range(r + 1)]
    return {"finished": finished, "n_rounds": r + 1, "labels_used": layout.labels_used(r),
            "rounds": rounds}


def format_log_line(s: dict) -> str:
    """One line per round: labels, errors, calibration, walkers, coverage, timings."""
    parts = [f"round {s['round']}: labels {s['labels_used']}/{s['label_budget']} "
             f"(dataset {s['n_dataset']}, +{s['n_new_labels']}, failed {s['n_failed']}, "
             f"dropped {s['n_dropped']})"]
    e = s.get("errors_valid") or {}
    if e:
        parts.append(f"valid E {1000 * e.get('energy_rmse', math.nan):.2f} meV/atom "
                     f"F {e.get('forces_rmse', math.nan):.3f} eV/Å")
    c = s.get("calibration") or {}
    if c:
        q = (s.get("quality_atomic") or {}).get("coverage")
        parts.append(f"calib c={c.get('total', math.nan):.3g}/{c.get('atomic', math.nan):.3g}"
                     + (f" atomic cov {q:.2f}" if q is not None else ""))
    if s.get("walkers"):
        steps = [w.get("n_steps", 0) for w in s["walkers"]]
        n_thr = sum(1 for w in s["walkers"] if w.get("stop_reason") == "threshold")
        thr = s.get("threshold") or {}
        by = f" > {thr['threshold']:.3g} eV/Å" if thr.get("relative") is not None else ""
        parts.append(f"{s['engine']} walkers stop {np.mean(steps):.0f}±{np.std(steps):.0f} steps "
                     f"({n_thr}/{len(steps)} by u{by}), pool {s.get('n_pool')}")
    if s.get("coverage"):
        parts.append(f"coverage {s['coverage']['this_round']:.3f} "
                     f"(cum. {s['coverage']['cumulative']:.3f})")
    t = s.get("timings_s", {})
    parts.append("t[s] " + " ".join(f"{k[:5]} {v:.1f}" for k, v in t.items()
                                    if v is not None and k != "reference_wall"))
    return " | ".join(parts)
