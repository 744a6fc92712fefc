"""pair_style ubmd under NPT (tri): the bias virial moves the cell; and its thermo log and dump
(uncertainty columns) are read back by ubmd.analysis."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_helpers import (ELEMENTS_HCO, header, random_cell, real_model_file, requires_plugin,
                            run_lmp, write_data)

pytestmark = requires_plugin

EV_A3_TO_BAR = 1.602176634e6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("npt")
    atoms = random_cell(ELEMENTS_HCO, 30, (7.5, 7.8, 8.1), seed=3, min_dist=1.15,
                        tilt=(0.4, -0.3, 0.2))
    write_data(d / "data.lmp", atoms, ELEMENTS_HCO)
    return d, atoms, real_model_file(d / "model.pt")


def npt_deck(model, style, steps):
    return header() + f"""
pair_style {style}
pair_coeff * * {model} H C O
mass * 12.0
velocity all create 300 4928459 dist gaussian
compute g all pair ubmd
compute ua all ubmd/atom
compute umax all reduce max c_ua
thermo_style custom step pe press pxx pyy pzz pxy pxz pyz vol lx ly lz xy xz yz c_g[1] c_g[5] c_umax
thermo_modify format float %.15g
thermo 10
dump d all custom 10 traj.dump id type x y z c_ua
dump_modify d sort id format float %.15g
fix integ all npt temp 300 300 0.05 tri 0.0 0.0 0.5
timestep 0.0005
run {steps}
print "UBMD cell $(lx:%.15g) $(ly:%.15g) $(lz:%.15g) $(xy:%.15g) $(xz:%.15g) $(yz:%.15g) $(vol:%.15g)"
"""


def test_bias_stress_changes_the_cell_under_npt_tri(setup, tmp_path):
    d, atoms, model = setup
    ref = tmp_path / "ref"
    bia = tmp_path / "bias"
    for w in (ref, bia):
        w.mkdir()
        (w / "data.lmp").write_bytes((d / "data.lmp").read_bytes())
    s_sigma, tau = 2.0, 1.0
    _, _, r0 = run_lmp(npt_deck(model, "ubmd", 200), ref)
    _, _, r1 = run_lmp(npt_deck(model, f"ubmd bias_stress {tau} fixed_scales 0.0 {s_sigma}", 200), bia)
    from ubmd.analysis.readers import read_thermo_log

    l0, l1 = read_thermo_log(ref / "log.lammps"), read_thermo_log(bia / "log.lammps")
    # step 0: same configuration; the pressure differs exactly by the bias virial
    #   dP_ab = tau * s_sigma * (du/deps)_ab / V   (LAMMPS virial sign: W = sum r f)
    from ubmd.calculator import UBMDCalculator

    calc = UBMDCalculator(model, tau_stress=1.0, window=1)
    a = atoms.copy()
    a.calc = calc
    a.get_stress()
    s_py = calc.results["bias_scale_stress"]
    du_deps_over_v = -np.asarray(calc.results["bias_stress"]) / s_py  # Voigt xx yy zz yz xz xy
    expected = tau * s_sigma * du_deps_over_v * EV_A3_TO_BAR
    got = np.array([l1.get(c)[0] - l0.get(c)[0] for c in ("Pxx", "Pyy", "Pzz", "Pyz", "Pxz", "Pxy")])
    assert np.abs(expected).max() > 1.0  # bar: a bias that matters
    assert np.allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    # the cell (lengths and tilts) then follows a different path
    c0, c1 = np.array(r0["cell"]), np.array(r1["cell"])
    assert np.abs(c1[:6] - c0[:6]).max() > 1e-3, (c0, c1)
    # and the volume moves the way the bias pushes: dP has the sign of tr(du/deps)
    trace = du_deps_over_v[:3].sum()
    assert np.sign(c1[6] - c0[6]) == np.sign(trace)


def test_analysis_reads_pair_style_log_and_dump(setup, tmp_path):
    d, atoms, model = setup
    (tmp_path / "data.lmp").write_bytes((d / "data.lmp").read_bytes())
    run_lmp(npt_deck(model, "ubmd", 50), tmp_path)
    from ubmd.analysis.readers import read_dump_columns, read_thermo_log

    log = read_thermo_log(tmp_path / "log.lammps")
    steps = log.get("Step")
    assert list(steps) == [0, 10, 20, 30, 40, 50]
    frames = read_dump_columns(tmp_path / "traj.dump")
    assert [f.timestep for f in frames] == [0, 10, 20, 30, 40, 50]
    for f, umax_log, umax_pair in zip(frames, log.get("c_umax"), log.get("c_g[5]")):
        assert f.n_atoms == len(atoms)
        ua = f.columns["c_ua"]
        assert ua.shape == (len(atoms),) and np.all(ua > 0)
        assert abs(ua.max() - umax_log) <= 1e-9 * umax_log
        assert abs(umax_pair - umax_log) <= 1e-9 * umax_log
    vol = log.get("Volume")
    assert np.all(np.isfinite(vol)) and np.ptp(vol) > 0
