"""``ubmd al report DIR``: plots of a campaign from what it wrote to disk (it may still be running).

PNG files (in ``DIR/report`` unless told otherwise):

* ``learning_curves.png``: validation (solid) and training (dashed) energy RMSE (meV/atom) and
  force RMSE (eV/Å) against the number of labels;
* ``calibration.png``: calibration constants c (total, atomic) per round and the empirical
  coverage of the (1 - alpha) intervals on the validation split against its target;
* ``walker_stops.png``: simulated time (fs) at which each walker stopped, per round, by reason;
* ``volume_traces.png``: cell volume (Å^3) against time for every walker with a cell (NPT);
* ``coverage.png``: when the config names two dihedrals: the visited (phi, psi) points of all
  rounds and the multiscale-grid coverage per round (this round / accumulated).

``report.json`` gathers the per-round numbers behind the plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import write_json_atomic
from .layout import CampaignLayout


def _figure(n_cols: int = 1, size=(5.0, 3.6)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * n_cols, size[1]), constrained_layout=True)
    return fig, [fig.add_subplot(1, n_cols, k + 1) for k in range(n_cols)]


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
    ax_e.legend()
    fig.savefig(path, dpi=120)
    return path


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
    ax_c.set(xlabel="round", ylabel="calibration constant c", yscale="log")
    ax_q.set(xlabel="round", ylabel="validation coverage", ylim=(0, 1.05))
    ax_c.legend()
    ax_q.legend()
    fig.savefig(path, dpi=120)
    return path


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
        ax_t.set(xlabel="round", ylabel="max calibrated atomic u (eV/Å)")
        ax_t.legend(fontsize=7)
    markers = {"threshold": "o", "max_steps": "^", "time_limit": "s", "error": "x"}
    seen = set()
    for r in rounds:
        for w in r.get("walkers") or []:
            reason = w.get("stop_reason", "error")
            ax.plot(r["round"], w.get("time_fs", 0.0), markers.get(reason, "x"), color="C0",
                    alpha=0.7, label=None if reason in seen else reason)
            seen.add(reason)
    ax.set(xlabel="round", ylabel="walker stop time (fs)")
    if seen:
        ax.legend()
    fig.savefig(path, dpi=120)
    return path


def plot_volumes(out: Path, rounds: list[dict], path: Path) -> Path | None:
    fig, (ax,) = _figure(1)
    drawn = False
    for r in rounds:
        for k, tr in enumerate(_traces(out, r["round"])):
            vol = tr.get("volume")
            if vol is None or not np.isfinite(vol).all() or len(vol) < 2 or np.ptp(vol) == 0:
                continue
            ax.plot(tr["time_fs"], vol, color=f"C{r['round'] % 10}", lw=0.8,
                    label=f"round {r['round']}" if k == 0 else None)
            drawn = True
    if not drawn:
        return None
    ax.set(xlabel="time (fs)", ylabel="cell volume (Å$^3$)")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    return path


def plot_coverage(out: Path, rounds: list[dict], names: list[str], path: Path) -> Path | None:
    pts = [tr["cvs"] for r in rounds for tr in _traces(out, r["round"]) if "cvs" in tr and len(tr["cvs"])]
    if not pts:
        return None
    fig, (ax_p, ax_c) = _figure(2)
    for r in rounds:
        for tr in _traces(out, r["round"]):
            if "cvs" in tr and len(tr["cvs"]):
                ax_p.plot(tr["cvs"][:, 0], tr["cvs"][:, 1], ".", ms=1.5, color=f"C{r['round'] % 10}")
    ax_p.set(xlim=(-180, 180), ylim=(-180, 180), xlabel=f"{names[0]} (deg)", ylabel=f"{names[1]} (deg)")
    cov = [(r["labels_used"], r["coverage"]) for r in rounds if r.get("coverage")]
    if cov:
        x = [c[0] for c in cov]
        ax_c.plot(x, [c[1]["this_round"] for c in cov], "-o", label="this round")
        ax_c.plot(x, [c[1]["cumulative"] for c in cov], "-s", label="accumulated")
        ax_c.legend()
    ax_c.set(xlabel="labels", ylabel="coverage", ylim=(0, 1.05))
    fig.savefig(path, dpi=120)
    return path


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
