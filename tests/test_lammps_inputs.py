"""pair_style ubmd input handling: every bad input gives its own clear error, and the
uncertainty outputs drive `fix halt` (through compute ubmd/atom and through fix pair)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lammps_helpers import (ELEMENTS_HCO, new_lammps, random_cell, real_model_file,
                            requires_plugin, write_data)

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

pytestmark = requires_plugin


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from toy_model import write_toy_model

    d = tmp_path_factory.mktemp("ubmd_inputs")
    atoms = random_cell(ELEMENTS_HCO, 24, (7.0, 7.5, 8.0), seed=1, min_dist=1.1)
    write_data(d / "data.lmp", atoms, ELEMENTS_HCO)
    return {
        "dir": d,
        "model": real_model_file(d / "model.pt"),
        "plain": real_model_file(d / "plain.pt", kind="none"),
        "old": write_toy_model(d / "old.pt", format_version=0),
        "checkpoint": _checkpoint(d / "members.pt"),
    }


def _checkpoint(path):
    """A torch.save file (as members.pt or a training checkpoint), not a TorchScript model."""
    import torch

    torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    return path


def deck(files, style="ubmd", coeff=None, units="metal", newton="on", pre=""):
    coeff = coeff if coeff is not None else f"* * {files['model']} H C O"
    return f"""units {units}
atom_style atomic
newton {newton}
{pre}
read_data {files['dir'] / 'data.lmp'}
pair_style {style}
pair_coeff {coeff}
run 0
"""


def lammps_error(text) -> str:
    lmp = new_lammps()
    try:
        lmp.commands_string(text)
    except Exception as exc:  # noqa: BLE001  (the lammps module raises a plain Exception)
        return str(exc)
    finally:
        lmp.close()
    return ""


@pytest.mark.parametrize("case, expect", [
    ("missing_file", "cannot open model file"),
    ("wrong_element", "element N (type 3) is not in the model"),
    ("old_format", "format_version 0 is not supported"),
    ("newton_off", "requires newton pair on"),
    ("wrong_units", "requires 'units metal'"),
    ("null_without_hybrid", "only allowed under pair_style hybrid"),
    ("unknown_keyword", "Unknown pair_style ubmd keyword: bias"),
    ("cuda_without_cuda", "CUDA"),
    ("bias_without_uncertainty", "need a model with uncertainty"),
    ("weights_unknown_element", "weights: element Cu is not in the model"),
    ("wrong_number_of_elements", "followed by 3 element symbols"),
    ("bad_dtype", "dtype must be float32 or float64"),
    ("directory_as_model", "is a directory, not a model file"),
    ("checkpoint_as_model", "is not a ubmd model file"),
    ("negative_tau", "pair_style ubmd tau_forces tau_F must be >= 0, not -0.1"),
    ("negative_tau_alias", "tau_stress (given as bias_stress) tau_sigma must be >= 0"),
    ("bad_uncertainty_mode", "uncertainty must be both, atomic or none (total is an older name"),
    ("bias_needs_both", "tau_forces/tau_stress need uncertainty both"),
    ("odd_weights", "weights needs element/weight pairs"),
    ("fixed_without_bias", "fixed_scales only makes sense with tau_forces or tau_stress"),
])
def test_bad_input_gives_clear_error(files, case, expect):
    m = files["model"]
    text = {
        "missing_file": deck(files, coeff="* * /nonexistent/model.pt H C O"),
        "wrong_element": deck(files, coeff=f"* * {m} H C N"),
        "old_format": deck(files, coeff=f"* * {files['old']} H C O"),
        "newton_off": deck(files, newton="off"),
        "wrong_units": deck(files, units="real"),
        "null_without_hybrid": deck(files, coeff=f"* * {m} H C NULL"),
        "unknown_keyword": deck(files, style="ubmd bias 0.1"),
        "cuda_without_cuda": deck(files, style="ubmd device cuda"),
        "bias_without_uncertainty": deck(files, style="ubmd bias_forces 0.1",
                                         coeff=f"* * {files['plain']} H C O"),
        "weights_unknown_element": deck(files, style="ubmd bias_forces 0.1 weights Cu 0.0"),
        "wrong_number_of_elements": deck(files, coeff=f"* * {m} H C"),
        "bad_dtype": deck(files, style="ubmd dtype float16"),
        "directory_as_model": deck(files, coeff=f"* * {files['dir']} H C O"),
        "checkpoint_as_model": deck(files, coeff=f"* * {files['checkpoint']} H C O"),
        "negative_tau": deck(files, style="ubmd tau_forces -0.1"),
        "negative_tau_alias": deck(files, style="ubmd bias_stress -1"),
        "bad_uncertainty_mode": deck(files, style="ubmd uncertainty all"),
        "bias_needs_both": deck(files, style="ubmd tau_forces 0.1 uncertainty atomic"),
        "odd_weights": deck(files, style="ubmd tau_forces 0.1 weights H 0.5 C window 1"),
        "fixed_without_bias": deck(files, style="ubmd fixed_scales 1.0 1.0"),
    }[case]
    if case == "cuda_without_cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is available here")
    msg = lammps_error(text)
    assert expect in msg, msg
    if case == "old_format":
        assert "ubmd export" in msg
    if case == "unknown_keyword":  # the message lists the keywords, older names included
        assert "tau_forces (or bias_forces), tau_stress (or bias_stress), window" in msg, msg


def test_older_keyword_names_give_identical_results(files):
    """bias_forces / bias_stress are the older names of tau_forces / tau_stress, uncertainty total
    the older name of both: the same energy, forces, virial and compute pair values to the bit,
    also over a few biased MD steps (adaptive window)."""
    import numpy as np

    def state(style):
        lmp = new_lammps()
        lmp.commands_string(deck(files, style=style).replace("run 0\n", "") + """
compute g all pair ubmd
compute pv all pressure NULL virial
thermo_style custom step pe c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6]
velocity all create 300.0 4928459 loop geom
timestep 0.0005
fix nve all nve
run 5
""")
        f = np.array(lmp.numpy.extract_atom("f")[: lmp.get_natoms()])
        pv = [lmp.extract_compute("pv", 0, 1)[k] for k in range(6)]
        g = [lmp.extract_compute("g", 0, 1)[k] for k in range(5)]
        pe = lmp.get_thermo("pe")
        lmp.close()
        return f, pv, g, pe

    new = state("ubmd tau_forces 0.3 tau_stress 0.2 window 2 weights H 0.5 uncertainty both")
    old = state("ubmd bias_forces 0.3 bias_stress 0.2 window 2 weights H 0.5 uncertainty total")
    np.testing.assert_array_equal(new[0], old[0])
    assert new[1:] == old[1:]
    assert new[2][2] > 0 and new[2][3] > 0      # s_F, s_sigma: the bias is on
    unbiased = state("ubmd uncertainty both")
    assert np.abs(unbiased[0] - new[0]).max() > 1e-6


def test_null_type_under_hybrid(files):
    """NULL maps a type out of ubmd under hybrid/overlay: that type's atoms get no ubmd energy."""
    lmp = new_lammps()
    m = files["model"]
    lmp.commands_string(deck(files, style="hybrid/overlay ubmd zero 4.0",
                             coeff=f"* * ubmd {m} H C NULL\npair_coeff * * zero"))
    pe_null = lmp.get_thermo("pe")
    lmp.close()
    lmp = new_lammps()
    lmp.commands_string(deck(files))
    pe_all = lmp.get_thermo("pe")
    lmp.close()
    assert pe_null != pe_all and abs(pe_null) > 0


def _halt_run(files, halt_lines, style="ubmd bias_forces 0.1 window 1"):
    lmp = new_lammps()
    lmp.commands_string(deck(files, style=style).replace("run 0\n", "") + f"""
velocity all create 300.0 4928459 loop geom
timestep 0.0005
fix nve all nve
{halt_lines}
thermo 5
run 40
""")
    step = lmp.get_thermo("step")
    lmp.close()
    return step


def test_fix_halt_on_atomic_uncertainty(files):
    """compute ubmd/atom -> compute reduce max -> fix halt stops the run at the first check."""
    lmp = new_lammps()
    lmp.commands_string(deck(files).replace("run 0\n", "") + """
compute ua all ubmd/atom
compute mx all reduce max c_ua
compute g all pair ubmd
thermo_style custom step pe c_mx c_g[5]
run 0
""")
    umax, umax_pair = lmp.extract_compute("mx", 0, 0), lmp.extract_compute("g", 0, 1)[4]
    lmp.close()
    assert umax > 0 and abs(umax - umax_pair) < 1e-12 * umax
    lines = f"""compute ua all ubmd/atom
compute mx all reduce max c_ua
variable umax equal c_mx
fix stop all halt 10 v_umax > {0.5 * umax!r} error continue"""
    assert _halt_run(files, lines) == 10
    assert _halt_run(files, lines.replace(repr(0.5 * umax), repr(100.0 * umax))) == 40


def test_fix_halt_through_fix_pair_trigger(files):
    """fix pair requests the per-atom uncertainties (trigger uncertainty_flag) on its steps even
    when pair ubmd monitors only every 1000 steps; fix halt reads them."""
    lines = """fix fp all pair 5 ubmd uncertainty 1
compute mx all reduce max f_fp
variable umax equal c_mx
fix stop all halt 5 v_umax > 1e-6 error continue"""
    assert _halt_run(files, lines, style="ubmd every 1000") == 5


def _bias_md(files, style, extra=""):
    """20 steps of biased MD; returns (final positions, u_total and max u_i of steps 0..20)."""
    lmp = new_lammps()
    lmp.commands_string(deck(files, style=style).replace("run 0\n", "") + extra + """
velocity all create 300.0 4928459 loop geom
timestep 0.0005
fix nve all nve
compute g all pair ubmd
variable u equal c_g[1]
variable ua equal c_g[5]
fix rec all vector 1 v_u v_ua
run 20
""")
    import numpy as np

    x = np.array(lmp.numpy.extract_atom("x")[: lmp.get_natoms()])
    rec = np.array([[lmp.extract_fix("rec", 0, 2, i, j) for j in range(2)] for i in range(21)])
    lmp.close()
    return x, rec[:, 0], rec[:, 1]


def test_every_with_bias_monitors_atoms_every_n_steps(files):
    """With a bias, `every N` thins only the per-atom monitoring: the bias (total u and its
    gradient) acts on every step, so the trajectory is the one of `every 1`, while the maximum
    atomic uncertainty is refreshed on multiples of N only."""
    import numpy as np

    x1, u1, ua1 = _bias_md(files, "ubmd bias_forces 0.3 window 1")
    x7, u7, ua7 = _bias_md(files, "ubmd bias_forces 0.3 window 1 every 7")
    assert np.allclose(x7, x1, rtol=0, atol=1e-10)
    assert np.allclose(u7, u1, rtol=1e-10, atol=0) and np.ptp(u1) > 0
    steps = np.arange(len(ua1))
    last_monitor = (steps // 7) * 7
    last_monitor[-1] = steps[-1]                 # the run's last step is monitored too (thermo)
    assert np.allclose(ua7, ua1[last_monitor], rtol=1e-10, atol=0)
    assert len(set(np.round(ua1, 12))) > 15 and len(set(np.round(ua7, 12))) == 4


def test_fix_pair_triggers_atomic_uncertainty_under_bias_with_every(files):
    """Bias + `every 1000` + fix pair every 4 steps: the trajectory is the one of `every 1`, and
    on the fix's steps the per-atom uncertainties (their maximum) are the ones `every 1` gives."""
    import numpy as np

    x1, _, ua1 = _bias_md(files, "ubmd bias_forces 0.3 window 1")
    fp = "fix fp all pair 4 ubmd uncertainty 1\n"
    x4, _, ua4 = _bias_md(files, "ubmd bias_forces 0.3 window 1 every 1000", extra=fp)
    assert np.allclose(x4, x1, rtol=0, atol=1e-10)
    steps = np.arange(len(ua1))
    fix_steps = steps % 4 == 0
    assert np.allclose(ua4[fix_steps], ua1[fix_steps], rtol=1e-10, atol=0)
    last = (steps // 4) * 4                      # compute pair keeps the last maximum
    assert np.allclose(ua4, ua1[last], rtol=1e-10, atol=0)


def test_every_n_with_thermo_on_steps_that_are_not_multiples(files):
    """`every 10` with per-atom uncertainties in thermo: LAMMPS prints thermo on a run's last
    step and on the next run's setup step, multiples of N or not; they are monitored too, and
    their values are the ones `every 1` gives."""
    def run(style):
        lmp = new_lammps()
        lmp.commands_string(deck(files, style=style).replace("run 0\n", "") + """
velocity all create 300.0 4928459 loop geom
timestep 0.0005
fix nve all nve
compute ua all ubmd/atom
compute mx all reduce max c_ua
thermo_style custom step pe c_mx
thermo 10
run 15
""")
        first = lmp.get_thermo("c_mx")
        lmp.command("run 7")
        second = lmp.get_thermo("c_mx")
        lmp.close()
        return first, second

    assert run("ubmd every 10") == pytest.approx(run("ubmd"), rel=1e-12)


def test_no_per_atom_uncertainty_is_refused_not_garbage(files):
    """uncertainty none (or a model without uncertainty): fix pair cannot extract the per-atom
    uncertainty and compute ubmd/atom refuses at init, instead of handing out uninitialised
    memory."""
    fp = """fix fp all pair 1 ubmd uncertainty 1
compute mx all reduce max f_fp
thermo_style custom step c_mx
run 1"""
    msg = lammps_error(deck(files, style="ubmd uncertainty none").replace("run 0\n", fp))
    assert "cannot extract" in msg, msg
    msg = lammps_error(deck(files, coeff=f"* * {files['plain']} H C O").replace("run 0\n", fp))
    assert "cannot extract" in msg, msg
    msg = lammps_error(deck(files, style="ubmd uncertainty none").replace(
        "run 0\n", "compute ua all ubmd/atom\ncompute mx all reduce max c_ua\n"
        "thermo_style custom step c_mx\nrun 0\n"))
    assert "computes no per-atom uncertainties" in msg, msg


def _bonded_deck(files, special="", exclude="", bonded=True):
    """Four atoms, two bonds (atom_style bond; ``bonded=False``: the same atoms, atomic)."""
    if bonded:
        style, box = "bond", "bond/types 1 extra/bond/per/atom 2 extra/special/per/atom 4"
        bonds = "bond_style zero\nbond_coeff 1 1.1\ncreate_bonds single/bond 1 1 2\n" \
                "create_bonds single/bond 1 2 3"
    else:
        style, box, bonds = "atomic", "", ""
    return f"""units metal
atom_style {style}
newton on
region box block 0 8 0 8 0 8
create_box 3 box {box}
create_atoms 1 single 1.0 1.0 1.0
create_atoms 2 single 2.1 1.0 1.0
create_atoms 3 single 2.1 2.2 1.0
create_atoms 1 single 3.0 2.5 2.0
mass * 1.0
{bonds}
{special}
{exclude}
pair_style ubmd
pair_coeff * * {files['model']} H C O
run 0
"""


def test_neighbor_exclusions_are_refused(files):
    """special_bonds 0 (the default) and neigh_modify exclude remove model pairs from the
    neighbour list: an error with the fix; with special_bonds 1 1 1 the bonded system's energy
    is the one of the same atoms without bonds."""
    msg = lammps_error(_bonded_deck(files))
    assert "special_bonds lj/coul 1.0 1.0 1.0" in msg, msg
    msg = lammps_error(_bonded_deck(files, special="special_bonds lj/coul 1.0 1.0 1.0",
                                    exclude="neigh_modify exclude type 1 2"))
    assert "neigh_modify exclude type 1 2" in msg, msg
    lmp = new_lammps()
    lmp.commands_string(_bonded_deck(files, special="special_bonds lj/coul 1.0 1.0 1.0"))
    pe_bonded = lmp.get_thermo("pe")
    lmp.close()
    unbonded = _bonded_deck(files, bonded=False)
    lmp = new_lammps()
    lmp.commands_string(unbonded)
    pe_atomic = lmp.get_thermo("pe")
    lmp.close()
    assert pe_bonded == pytest.approx(pe_atomic, rel=1e-12) and pe_atomic != 0.0


def test_minimize_with_bias_is_refused(files):
    msg = lammps_error(deck(files, style="ubmd bias_forces 0.2").replace("run 0", "minimize 0 1e-4 10 100"))
    assert "cannot be used with minimize" in msg, msg
    assert lammps_error(deck(files).replace("run 0", "minimize 0 1e-4 10 100")) == ""


def test_reissued_pair_style_keeps_the_model(files):
    """pair_style ubmd again (LAMMPS's convention): pair_coeff need not be repeated; the new
    settings (bias, weights) apply and give the energies and forces of a fresh deck."""
    import numpy as np

    def state(lmp):
        return lmp.get_thermo("pe"), np.array(lmp.numpy.extract_atom("f")[: lmp.get_natoms()])

    lmp = new_lammps()
    lmp.commands_string(deck(files))
    lmp.commands_string("pair_style ubmd bias_forces 0.3 window 1 weights H 0.0\nrun 0")
    pe_re, f_re = state(lmp)
    lmp.close()
    lmp = new_lammps()
    lmp.commands_string(deck(files, style="ubmd bias_forces 0.3 window 1 weights H 0.0"))
    pe_new, f_new = state(lmp)
    lmp.close()
    lmp = new_lammps()
    lmp.commands_string(deck(files, style="ubmd bias_forces 0.3 window 1"))
    _, f_h = state(lmp)
    lmp.close()
    assert pe_re == pytest.approx(pe_new, rel=1e-12)
    np.testing.assert_allclose(f_re, f_new, rtol=0, atol=1e-10)
    assert np.abs(f_h - f_new).max() > 1e-6          # the H weight reaches the forces


def test_adaptive_scale_one_window_entry_per_step(files):
    """run 0 followed by run N evaluates step 0 twice: the adaptive window takes it once, so the
    trajectory equals the one of a single run N."""
    import numpy as np

    def final_x(pre_run):
        lmp = new_lammps()
        lmp.commands_string(deck(files, style="ubmd bias_forces 0.3 window 5").replace("run 0\n", "") + f"""
velocity all create 300.0 4928459 loop geom
timestep 0.0005
fix nve all nve
{pre_run}
run 12
""")
        x = np.array(lmp.numpy.extract_atom("x")[: lmp.get_natoms()])
        lmp.close()
        return x

    np.testing.assert_allclose(final_x("run 0\nrun 0"), final_x(""), rtol=0, atol=1e-12)


def test_compute_ubmd_atom_refuses_after_delete_atoms(files):
    """write_dump right after run 0 works; after delete_atoms the values of step 0 belong to
    other atom indices: refused."""
    dump = f"write_dump all custom {files['dir'] / 'd.dump'} id c_ua\n"
    base = deck(files).replace("run 0", "compute ua all ubmd/atom\nrun 0")
    assert lammps_error(base + dump) == ""
    msg = lammps_error(base + "group gone id 1 2 3\ndelete_atoms group gone compress no\n" + dump)
    assert "atoms were added or deleted" in msg, msg
