"""``ubmd al report DIR``: plots of a campaign from what it wrote to disk (it may still be running).

PNG files (in ``DIR/report`` unless told otherwise):

* ``learning_curves.png``: validation (solid) and training (dashed) energy RMSE (meV/atom) and
  force RMSE (eV/Å) against the number of labels;
* ``calibration.png``: calibration constants c (total, atomic) per round and the empirical
  coverage of the (1 - alpha) intervals on the validation split against its target;
* ``walker_stops.png``: simulated time (fs) at which each walker stopped, per round, by reason
  (threshold, runaway, max_steps, time_limit, error);
* ``volume_traces.png``: cell volume (Å^3) against time for every walker with a cell (NPT),
  coloured by round;
* ``coverage.png``: when the config names two dihedrals: the visited (phi, psi) points of all
  rounds (coloured by round, with a colour bar) and the multiscale-grid coverage per round (this
  round / accumulated).

``report.json`` gathers the per-round numbers behind the plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import figures as F
from ..io import write_json_atomic
from .layout import CampaignLayout


def _figure(n_cols: int = 1, size=(5.0, 3.6)):
    return F.new_figure(size[0], size[1], n_cols=n_cols)


def _rounds_axis(ax) -> None:
    """An x axis of round numbers: whole numbers only."""
    ax.set_xlabel("round")
    F.integer_ticks(ax.xaxis)


def _rounds(out: Path) -> list[dict]:
    rounds = [rl.read_summary() for rl in CampaignLayout(out).finished_rounds()]
    if not rounds:
        raise FileNotFoundError(f"{out}: no finished round (round_000/summary.json) to report on")
    return rounds


def _traces(out: Path, r: int) -> list[dict]:
    return [dict(np.load(p)) for p in CampaignLayout(out).round(r).walker_traces()]


def plot_learning_curves(rounds: list[dict], path: Path) -> Path:
    fig, (ax_e, ax_f) = _figure(2)
    labels = [r["labels_used"] for r in rounds]
    for key, style in (("errors_valid", "-o"), ("errors_train", "--s")):
        e = [1000 * (r.get(key) or {}).get("energy_rmse", np.nan) for r in rounds]
        f = [(r.get(key) or {}).get("forces_rmse", np.nan) for r in rounds]
        name = key.split("_")[1]
        ax_e.plot(labels, e, style, label=name)
        ax_f.plot(labels, f, style, label=name)
    ax_e.set(xlabel="labels", ylabel="energy RMSE (meV/atom)", yscale="log")
    ax_f.set(xlabel="labels", ylabel="force RMSE (eV/Å)", yscale="log")
    for ax in (ax_e, ax_f):
        F.integer_ticks(ax.xaxis)
    ax_e.legend(fontsize=F.LEGEND_SIZE)
    ax_e.set_title("energy", fontsize=F.TITLE_SIZE)
    ax_f.set_title("forces", fontsize=F.TITLE_SIZE)
    return F.save(fig, path)


def plot_calibration(rounds: list[dict], path: Path) -> Path:
    fig, (ax_c, ax_q) = _figure(2)
    x = [r["round"] for r in rounds]
    for key in ("total", "atomic"):
        ax_c.plot(x, [(r.get("calibration") or {}).get(key, np.nan) for r in rounds], "-o", label=key)
        ax_q.plot(x, [(r.get(f"quality_{key}") or {}).get("coverage", np.nan) for r in rounds], "-o",
                  label=key)
    target = next(((r.get("quality_atomic") or {}).get("target_coverage") for r in rounds
                   if r.get("quality_atomic")), None)
    if target is not None:
        ax_q.axhline(target, color="k", lw=0.8, ls=":", label="target")
    ax_c.set(ylabel="calibration constant c", yscale="log")
    ax_q.set(ylabel="coverage on the validation split", ylim=(0, 1.05))
    for ax in (ax_c, ax_q):
        _rounds_axis(ax)
        ax.legend(fontsize=F.LEGEND_SIZE)
    return F.save(fig, path)


def plot_walker_stops(rounds: list[dict], path: Path) -> Path:
    """Walker stop times per round; with ``walkers.threshold_relative`` a second panel shows the
    round's threshold, the model's own level (median max u_i of the labelled structures) and the
    absolute floor."""
    thr = [(r["round"], r["threshold"]) for r in rounds
           if (r.get("threshold") or {}).get("relative") is not None]
    fig, axes = _figure(2 if thr else 1)
    ax = axes[0]
    if thr:
        ax_t = axes[1]
        x = [q for q, _ in thr]
        ax_t.plot(x, [t["threshold"] for _, t in thr], "-o", label="threshold")
        ax_t.plot(x, [t["relative"] * t.get("reference_level", np.nan) for _, t in thr], "--",
                  label="k × model level")
        ax_t.plot(x, [t.get("reference_level", np.nan) for _, t in thr], ":", label="model level")
        ax_t.plot(x, [t["absolute"] for _, t in thr], "k-", lw=0.8, label="absolute floor")
        ax_t.set(ylabel="max calibrated atomic u (eV/Å)")
        _rounds_axis(ax_t)
        ax_t.legend(fontsize=F.LEGEND_SIZE)
    markers = {"threshold": "o", "runaway": "v", "max_steps": "^", "time_limit": "s",
               "error": "x"}
    seen = set()
    for r in rounds:
        for w in r.get("walkers") or []:
            reason = w.get("stop_reason", "error")
            ax.plot(r["round"], w.get("time_fs", 0.0), markers.get(reason, "x"), color="C0",
                    alpha=0.7, label=None if reason in seen else reason)
            seen.add(reason)
    ax.set(ylabel="walker stop time (fs)")
    _rounds_axis(ax)
    if seen:
        ax.legend(fontsize=F.LEGEND_SIZE, title="stopped by", title_fontsize=F.LEGEND_SIZE)
    return F.save(fig, path)


def plot_volumes(out: Path, rounds: list[dict], path: Path) -> Path | None:
    """Cell volume against time of every walker with a moving cell, coloured by round (a
    legend up to 10 rounds, a colour bar beyond, so that no round goes unnamed)."""
    traces = []
    for r in rounds:
        for tr in _traces(out, r["round"]):
            vol = tr.get("volume")
            if vol is None or not np.isfinite(vol).all() or len(vol) < 2 or np.ptp(vol) == 0:
                continue
            traces.append((r["round"], tr["time_fs"], vol))
    if not traces:
        return None
    fig, (ax,) = _figure(1, size=(5.6, 3.8))
    drawn = sorted({q for q, _, _ in traces})
    many = len(drawn) > 10
    norm, cmap = F.colour_key(fig, ax, drawn, "round", integer=True) if many else (None, None)
    labelled = set()
    for q, t, vol in traces:
        colour = cmap(norm(q)) if many else f"C{drawn.index(q) % 10}"
        ax.plot(t, vol, color=colour, lw=0.8,
                label=None if many or q in labelled else f"round {q}")
        labelled.add(q)
    ax.set(xlabel="walker time (fs)", ylabel="cell volume (Å$^3$)")
    if not many:
        ax.legend(fontsize=F.LEGEND_SIZE)
    return F.save(fig, path)


def plot_coverage(out: Path, rounds: list[dict], names: list[str], path: Path) -> Path | None:
    pts = [tr["cvs"] for r in rounds for tr in _traces(out, r["round"]) if "cvs" in tr and len(tr["cvs"])]
    if not pts:
        return None
    fig, (ax_p, ax_c) = _figure(2, size=(5.0, 4.4))
    numbers = [r["round"] for r in rounds]
    norm, cmap = F.colour_key(fig, ax_p, numbers, "round", integer=True)
    for r in rounds:
        for tr in _traces(out, r["round"]):
            if "cvs" in tr and len(tr["cvs"]):
                ax_p.plot(tr["cvs"][:, 0], tr["cvs"][:, 1], ".", ms=1.5,
                          color=cmap(norm(r["round"])), rasterized=True)
    ax_p.set(xlim=(-180, 180), ylim=(-180, 180), xlabel=f"{names[0]} (deg)",
             ylabel=f"{names[1]} (deg)")
    ax_p.set_aspect("equal", adjustable="box")
    ax_p.set_title("walker traces", fontsize=F.TITLE_SIZE)
    cov = [(r["labels_used"], r["coverage"]) for r in rounds if r.get("coverage")]
    if cov:
        x = [c[0] for c in cov]
        ax_c.plot(x, [c[1]["this_round"] for c in cov], "-o", label="this round")
        ax_c.plot(x, [c[1]["cumulative"] for c in cov], "-s", label="accumulated")
        ax_c.legend(fontsize=F.LEGEND_SIZE)
    ax_c.set(xlabel="labels", ylabel="coverage of the dihedral plane", ylim=(0, 1.05))
    F.integer_ticks(ax_c.xaxis)
    return F.save(fig, path)


def write_report(directory: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write every plot that the campaign's data support; returns the paths written."""
    directory = Path(directory)
    rounds = _rounds(directory)
    dest = Path(out) if out else directory / "report"
    dest.mkdir(parents=True, exist_ok=True)
    paths = [plot_learning_curves(rounds, dest / "learning_curves.png"),
             plot_calibration(rounds, dest / "calibration.png"),
             plot_walker_stops(rounds, dest / "walker_stops.png")]
    vol = plot_volumes(directory, rounds, dest / "volume_traces.png")
    paths += [vol] if vol else []
    cfg_path = CampaignLayout(directory).config
    if cfg_path.exists():
        import yaml

        dihedrals = (yaml.safe_load(cfg_path.read_text()) or {}).get("dihedrals")
        if dihedrals:
            cov = plot_coverage(directory, rounds, list(dihedrals), dest / "coverage.png")
            paths += [cov] if cov else []
    table = [{k: r.get(k) for k in ("round", "labels_used", "n_dataset", "errors_valid",
                                    "calibration", "coverage", "timings_s", "n_pool")}
             for r in rounds]
    write_json_atomic(table, dest / "report.json")
    return paths + [dest / "report.json"]
