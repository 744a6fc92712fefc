"""Every plot type of the package renders, with the fixes of issue #26: a legend entry (or a
colour bar) for every round of the volume traces, whole-number round ticks, units on the walker
trace axes (no "LAMMPS units"), titles inside the figure, a colour key for coverage scatters and
the Ramachandran traces, densities per unit of x, parity plots with units."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ubmd.figures as F


@pytest.fixture
def figures(monkeypatch):
    """The figures saved during a test, by file name (the PNG is still written)."""
    saved: dict[str, object] = {}
    real = F.save

    def save(fig, path):
        saved[Path(path).name] = fig
        return real(fig, path)

    monkeypatch.setattr(F, "save", save)
    return saved


def _renderer(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _inside(fig, artist) -> bool:
    box = artist.get_window_extent(_renderer(fig))
    w, h = fig.bbox.width, fig.bbox.height
    return box.x0 >= -1 and box.y0 >= -1 and box.x1 <= w + 1 and box.y1 <= h + 1


def _integer_ticks(ax) -> bool:
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    return bool(ticks) and all(float(t).is_integer() for t in ticks)


def _campaign(root: Path, n_rounds: int = 3) -> Path:
    """A campaign directory with round summaries and walker traces (volumes, dihedrals): in
    every round walker 0's cell does not move (it is left out of the volume plot)."""
    rng = np.random.default_rng(0)
    (root / "config.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text("dihedrals: {phi: [1, 3, 4, 6], psi: [3, 4, 6, 8]}\n")
    for r in range(n_rounds):
        d = root / f"round_{r:03d}"
        for k in range(2):
            w = d / "walkers" / f"w{k:02d}"
            w.mkdir(parents=True)
            t = np.arange(20) * 5.0
            vol = np.full(20, 1000.0) if k == 0 else 1000 + np.cumsum(rng.normal(0, 2, 20))
            np.savez(w / "trace.npz", time_fs=t, volume=vol,
                     cvs=rng.uniform(-180, 180, (20, 2)))
        summary = {"round": r, "labels_used": 8 * (r + 1), "n_dataset": 8 * (r + 1),
                   "errors_valid": {"energy_rmse": 0.01 / (r + 1), "forces_rmse": 0.3 / (r + 1)},
                   "errors_train": {"energy_rmse": 0.005, "forces_rmse": 0.2},
                   "calibration": {"total": 0.5, "atomic": 100.0},
                   "quality_atomic": {"coverage": 0.95, "target_coverage": 0.95},
                   "quality_total": {"coverage": 0.9},
                   "walkers": [{"stop_reason": "threshold", "time_fs": 50.0},
                               {"stop_reason": "runaway", "time_fs": 20.0}],
                   "threshold": {"threshold": 2.0, "relative": 2.0, "reference_level": 0.8,
                                 "absolute": 1.5},
                   "coverage": {"this_round": 0.2 * (r + 1), "cumulative": 0.25 * (r + 1)},
                   "timings_s": {}, "n_pool": 8}
        (d / "summary.json").write_text(json.dumps(summary))
    return root


def test_al_report_plots(tmp_path, figures):
    from ubmd.al.report import write_report

    out = _campaign(tmp_path / "run")
    paths = write_report(out)
    names = {p.name for p in paths}
    assert names >= {"learning_curves.png", "calibration.png", "walker_stops.png",
                     "volume_traces.png", "coverage.png", "report.json"}
    for p in paths:
        assert p.stat().st_size > (200 if p.suffix == ".json" else 5000), p
    vol = figures["volume_traces.png"]
    legend = [t.get_text() for t in vol.axes[0].get_legend().get_texts()]
    assert legend == ["round 0", "round 1", "round 2"]  # walker 0 (a fixed cell) left out
    for name in ("calibration.png", "walker_stops.png"):
        assert all(_integer_ticks(ax) for ax in figures[name].axes), name
    stops = [t.get_text() for t in figures["walker_stops.png"].axes[0].get_legend().get_texts()]
    assert "runaway" in stops
    cov = figures["coverage.png"]
    assert any(ax.get_ylabel() == "round" for ax in cov.axes)  # the colour bar of the rounds


def test_volume_traces_of_many_rounds_get_a_colour_bar(tmp_path, figures):
    from ubmd.al.report import plot_volumes

    out = _campaign(tmp_path / "run", n_rounds=12)
    rounds = [json.loads((out / f"round_{r:03d}" / "summary.json").read_text())
              for r in range(12)]
    plot_volumes(out, rounds, tmp_path / "v.png")
    fig = figures["v.png"]
    assert any(ax.get_ylabel() == "round" for ax in fig.axes)


def test_analysis_plots(tmp_path, figures):
    from ubmd.analysis import plots
    from ubmd.analysis.cvs import parse_cv

    rng = np.random.default_rng(1)
    walkers = {f"w{k}": rng.uniform(-180, 180, (50, 2)) for k in range(3)}
    occ = {k: rng.random((2 ** k, 2 ** k)) > 0.5 for k in (1, 2, 3)}
    plots.plot_coverage(walkers, occ, {k: float(o.mean()) for k, o in occ.items()},
                        ((-180, 180), (-180, 180)), ["phi (deg)", "psi (deg)"],
                        tmp_path / "cov.png")
    legend = figures["cov.png"].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["w0", "w1", "w2"]
    many = {f"w{k}": rng.uniform(-180, 180, (10, 2)) for k in range(20)}
    plots.plot_coverage(many, occ, {k: 0.5 for k in occ}, ((-180, 180), (-180, 180)),
                        ["phi (deg)", "psi (deg)"], tmp_path / "cov20.png")
    assert any(ax.get_ylabel() == "walker" for ax in figures["cov20.png"].axes)

    lags = np.arange(50.0)
    title = "log:Volume of run0/log.lammps, run1/log.lammps, run2/log.lammps: 3 run(s), T = 12.5 steps"
    plots.plot_acf(lags, np.exp(-lags / 10), 0.1 * np.ones(50), tmp_path / "acf.png",
                   {"sine model": np.cos(lags / 5)}, xlabel="lag (steps)", title=title,
                   runs=[np.exp(-lags / 9), np.exp(-lags / 11)])
    acf = figures["acf.png"]
    assert _inside(acf, acf.axes[0].title)

    vol = parse_cv("volume")
    hist = {"edges": np.linspace(900, 1100, 21),
            "campaigns": {"a": {"density": np.full(20, 0.005), "n": 100}}}
    plots.plot_histograms(hist, vol.label, tmp_path / "hist.png", unit=vol.unit)
    assert figures["hist.png"].axes[0].get_ylabel() == "probability density (1/Å$^3$)"

    series = {parse_cv(c).label: rng.normal(size=30) for c in
              ("log:temperature", "log:max_atomic_uncertainty", "log:uncertainty", "log:cvs[1]",
               "log:Press", "log:PotEng")}
    plots.plot_traces(np.arange(30) * 10, series, tmp_path / "trace.png", xlabel="MD step",
                      title="runs/al/round_003/walkers/w00/trace.npz")
    fig = figures["trace.png"]
    labels = [ax.get_ylabel().replace("\n", " ") for ax in fig.axes]
    assert labels == ["temperature (K)", "max atomic uncertainty (eV/Å)", "uncertainty (eV/atom)",
                      "cvs[1] (deg)", "pressure (bar)", "potential energy (eV)"]
    assert not any("LAMMPS units" in label for label in labels)
    r = _renderer(fig)  # y labels of neighbouring panels do not overlap
    boxes = [ax.yaxis.label.get_window_extent(r) for ax in fig.axes]
    assert all(a.y0 >= b.y1 - 1 for a, b in zip(boxes, boxes[1:]))


def test_uncertainty_and_parity_plots(tmp_path, figures):
    from ubmd.evaluation import plot_parity
    from ubmd.uncertainty.plots import plot_reliability, plot_uncertainty_vs_error

    rng = np.random.default_rng(2)
    u = rng.uniform(0.1, 1, 200)
    r = u * rng.normal(size=200) / 2
    plot_reliability(u, r, tmp_path / "rel.png")
    plot_uncertainty_vs_error(u, r, tmp_path / "uve.png", unit="eV/Å")
    rows, labels = [], []
    for _ in range(5):
        f = rng.normal(size=(4, 3))
        s = rng.normal(size=(3, 3)) * 1e-3
        rows.append({"energy": 1.0, "forces": f + 0.1, "stress": s, "n": 4})
        labels.append({"energy": 1.1, "forces": f, "stress": s * 1.1})
    plot_parity(rows, labels, tmp_path / "parity.png")
    parity = figures["parity.png"]
    assert [ax.get_xlabel() for ax in parity.axes[:3]] == [
        "reference energy (eV/atom)", "reference force component (eV/Å)",
        "reference stress component (GPa)"]
    for name in ("rel.png", "uve.png", "parity.png"):
        assert (tmp_path / name).stat().st_size > 5000
