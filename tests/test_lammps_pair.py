"""pair_style ubmd inside LAMMPS against the Python reference (ubmd.calculator.UBMDCalculator on
the same model file written by the real exporter), across MPI ranks, and against finite
differences taken by LAMMPS itself (fix numdiff, fix numdiff/virial)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from lammps_helpers import (ELEMENTS_HCO, header, mpirun, random_cell, read_dump_forces,
                            real_model_file, rel_err, report_block, requires_plugin, run_lmp,
                            write_data)

pytestmark = requires_plugin

ELEMENTS = ELEMENTS_HCO


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return real_model_file(tmp_path_factory.mktemp("ubmd_model") / "model.pt")


@pytest.fixture(scope="module", params=["last_layer", "sketch"])
def bias_model(request, tmp_path_factory):
    """Both feature kinds for the bias tests. The sketched model (K = 64) takes the per-atom
    route in its first layer below 18 atoms per rank and the U diag(v) V^T route above
    (ubmd.uncertainty.features.matrix_route_cheaper), so 1 vs 4 ranks also compares the two routes."""
    d = tmp_path_factory.mktemp(f"ubmd_model_{request.param}")
    return real_model_file(d / "model.pt", features=request.param)


@pytest.fixture(scope="module")
def cell_atoms():
    # triclinic (lower-triangular) periodic cell, smaller than 2 cutoffs: several images of
    # the same neighbour appear in the full list
    return random_cell(ELEMENTS, 24, (7.0, 7.5, 8.0), seed=1, min_dist=1.1, tilt=(0.5, -0.3, 0.2))


def reference(model_path, atoms, **kw):
    from ubmd.calculator import UBMDCalculator

    calc = UBMDCalculator(model_path, **kw)
    a = atoms.copy()
    a.calc = calc
    f = a.get_forces()
    r = calc.results
    out = {"energy": r["energy"], "forces": f, "u": r.get("uncertainty", 0.0),
           "bias_energy": r.get("bias_energy", 0.0), "s_f": r.get("bias_scale_forces", 0.0),
           "s_s": r.get("bias_scale_stress", 0.0),
           "max_au": float(np.max(r["atomic_uncertainty"])) if "atomic_uncertainty" in r else 0.0}
    if a.pbc.all():
        w = -a.get_stress(voigt=False) * a.get_volume()   # virial incl. bias, eV
        out["virial"] = [w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]]
    return out


def lammps_single_point(model_path, atoms, workdir, style_args, nprocs=1, extra_pre="",
                        extra_post=""):
    write_data(workdir / "data.lmp", atoms, ELEMENTS)
    deck = header(extra_pre=extra_pre) + f"""
pair_style ubmd {style_args}
pair_coeff * * {model_path} {' '.join(ELEMENTS)}
{extra_post}
""" + report_block()
    _, out, res = run_lmp(deck, workdir, nprocs)
    _, f = read_dump_forces(workdir / "forces.dump")
    return {"energy": res["energy"][0], "virial": res["virial"], "forces": f,
            "extra": res["extra"], "log": out}


@pytest.mark.parametrize("style_args, kw", [
    ("uncertainty none", dict(uncertainty="none")),
    ("", dict()),
    ("bias_forces 0.3 bias_stress 0.2 window 1 weights H 0.5 O 2.0",
     dict(tau_forces=0.3, tau_stress=0.2, window=1, weights={"H": 0.5, "O": 2.0})),
], ids=["plain", "uncertainty", "bias"])
def test_matches_python_reference(bias_model, cell_atoms, tmp_path, style_args, kw):
    ref = reference(bias_model, cell_atoms, **kw)
    got = lammps_single_point(bias_model, cell_atoms, tmp_path, style_args)
    assert rel_err(got["energy"], ref["energy"]) < 1e-8
    assert rel_err(got["forces"], ref["forces"]) < 1e-8
    assert rel_err(got["virial"], ref["virial"]) < 1e-8
    want = [ref["u"], ref["bias_energy"], ref["s_f"], ref["s_s"], ref["max_au"]]
    for g, w in zip(got["extra"], want):
        assert abs(g - w) <= 1e-8 * max(abs(w), 1e-12), (got["extra"], want)
    if kw.get("tau_forces"):
        # the bias is really on and visible in the forces
        from ubmd.calculator import UBMDCalculator

        a = cell_atoms.copy()
        a.calc = UBMDCalculator(bias_model)
        assert rel_err(got["forces"], a.get_forces()) > 1e-3
        assert ref["s_f"] > 0 and ref["s_s"] > 0


def _compare_runs(a, b, tol):
    assert rel_err(a["energy"], b["energy"]) < tol
    assert rel_err(a["forces"], b["forces"]) < tol
    assert rel_err(a["virial"], b["virial"]) < tol
    assert rel_err(a["extra"], b["extra"]) < tol


def _on_ranks(model, atoms, tmp_path, args, ranks, pre_4=""):
    """lammps_single_point on each rank count (own directories); ``pre_4``: extra_pre for 4."""
    runs = {}
    for n in ranks:
        d = tmp_path / f"np{n}"
        d.mkdir()
        post = "reset_timestep 1" if "every" in args else ""
        runs[n] = lammps_single_point(model, atoms, d, args, nprocs=n, extra_post=post,
                                      extra_pre=pre_4 if n == 4 else "")
    return runs


@pytest.mark.skipif(mpirun() is None, reason="mpirun not found")
def test_mpi_ranks_agree_periodic(bias_model, cell_atoms, tmp_path):
    """1, 2 and 4 ranks, every rank owning atoms, bias on: same numbers to 1e-10."""
    atoms = cell_atoms.repeat((2, 1, 1))
    args = "bias_forces 0.3 bias_stress 0.2 window 1 weights H 0.5"
    runs = _on_ranks(bias_model, atoms, tmp_path, args, (1, 2, 4))
    ref = reference(bias_model, atoms, tau_forces=0.3, tau_stress=0.2, window=1,
                    weights={"H": 0.5})
    assert rel_err(runs[1]["forces"], ref["forces"]) < 1e-8
    for n in (2, 4):
        _compare_runs(runs[n], runs[1], 1e-10)


def lammps_unmonitored_step(model_path, atoms, workdir, style_args, nprocs=1, extra="", check=True):
    """Energy, virial, forces and ubmd outputs of step 2 of `run 2` from step 1, without an
    integrator: with `every 1000` step 2 is not monitored (not a multiple of N, not a run's setup
    or last step, no output on it), so the bias takes the path without per-atom features."""
    write_data(workdir / "data.lmp", atoms, ELEMENTS)
    vir = " ".join(f"c_pvir[{k}]" for k in range(1, 7))
    pair_vals = " ".join(f"c_ubmdg[{k}]" for k in range(1, 6))
    rec = lambda cols: " ".join(f"$(f_rec[1][{k}]:%.17g)" for k in cols)  # noqa: E731
    deck = header() + f"""
pair_style ubmd {style_args}
pair_coeff * * {model_path} {' '.join(ELEMENTS)}
reset_timestep 1
compute ubmdg all pair ubmd
compute pvir all pressure NULL virial
fix st all store/state 2 fx fy fz
fix rec all vector 2 c_thermo_pe {pair_vals}
fix rp all vector 2 {vir}
{extra}
thermo 0
run 2
variable s equal vol/1.6021765e6
print "UBMD energy {rec([1])}"
print "UBMD virial {' '.join(f'$(f_rp[1][{k}]*v_s:%.17g)' for k in range(1, 7))}"
print "UBMD extra {rec(range(2, 7))}"
write_dump all custom forces.dump id f_st[1] f_st[2] f_st[3] modify format float %.17g sort id
"""
    rc, out, res = run_lmp(deck, workdir, nprocs, check=check)
    if rc != 0:
        return {"log": out}
    _, f = read_dump_forces(workdir / "forces.dump")
    return {"energy": res["energy"][0], "virial": res["virial"], "forces": f,
            "extra": res["extra"], "log": out}


@pytest.mark.skipif(mpirun() is None, reason="mpirun not found")
def test_bias_on_a_step_without_atomic_monitoring(bias_model, cell_atoms, tmp_path):
    """`every 1000` on an unmonitored step: the bias needs only the feature sum (no per-atom
    features, the cheapest path of atomic_parts), on 1 and 4 ranks; same energy, forces, virial
    and u as Python's per-atom reference; the per-atom maximum is the setup step's (not
    refreshed)."""
    atoms = cell_atoms.repeat((2, 1, 1))
    args = "bias_forces 0.3 bias_stress 0.2 window 1 every 1000"
    ref = reference(bias_model, atoms, tau_forces=0.3, tau_stress=0.2, window=1)
    runs = {}
    for n in (1, 4):
        (tmp_path / f"np{n}").mkdir()
        runs[n] = lammps_unmonitored_step(bias_model, atoms, tmp_path / f"np{n}", args, nprocs=n)
        assert rel_err(runs[n]["energy"], ref["energy"]) < 1e-8
        assert rel_err(runs[n]["forces"], ref["forces"]) < 1e-8
        assert rel_err(runs[n]["virial"], ref["virial"]) < 1e-8
        assert rel_err(runs[n]["extra"][:4], [ref["u"], ref["bias_energy"], ref["s_f"], ref["s_s"]]) < 1e-8
        assert rel_err(runs[n]["extra"][4], ref["max_au"]) < 1e-8     # from the setup step
    _compare_runs(runs[4], runs[1], 1e-10)
    # step 2 really is unmonitored: per-atom uncertainties requested on it are refused
    (tmp_path / "probe").mkdir()
    probe = lammps_unmonitored_step(bias_model, atoms, tmp_path / "probe", args, check=False,
                                    extra="compute ua all ubmd/atom\nfix su all store/state 2 c_ua")
    assert "did not compute atomic uncertainties on step 2" in probe["log"], probe["log"][-2000:]


@pytest.mark.skipif(mpirun() is None, reason="mpirun not found")
def test_mpi_rank_without_atoms(bias_model, tmp_path):
    """A molecule in a big box on 4 ranks (processors 4 1 1): 3 ranks own no atom, all take part
    in the collective calls and the result equals the serial one and Python's."""
    from ase.build import molecule

    mol = molecule("CH3CH2OH")
    mol.rattle(0.05, seed=2)
    mol.positions += 5.0 - mol.positions.min(0)
    box = Atoms(mol.get_chemical_symbols(), positions=mol.positions,
                cell=np.diag([40.0, 20.0, 20.0]), pbc=True)
    args = "bias_forces 0.25 window 1"
    runs = _on_ranks(bias_model, box, tmp_path, args, (1, 4), pre_4="processors 4 1 1")
    _compare_runs(runs[4], runs[1], 1e-10)
    ref = reference(bias_model, mol, tau_forces=0.25, window=1)   # non-periodic in Python
    assert rel_err(runs[1]["forces"], ref["forces"]) < 1e-8
    assert rel_err(runs[1]["extra"][:3], [ref["u"], ref["bias_energy"], ref["s_f"]]) < 1e-8


def test_forces_and_virial_vs_finite_differences(model_path, cell_atoms, tmp_path):
    """fix numdiff (forces) and fix numdiff/virial (virial) of the model energy inside LAMMPS."""
    write_data(tmp_path / "data.lmp", cell_atoms, ELEMENTS)
    deck = header() + f"""
pair_style ubmd uncertainty none
pair_coeff * * {model_path} H C O
fix nd all numdiff 1 1.0e-4
fix nv all numdiff/virial 1 1.0e-5
compute pvir all pressure NULL virial
thermo_style custom step pe c_pvir[1] f_nv[1]
thermo_modify format float %.17g
dump d all custom 1 fd.dump id fx fy fz f_nd[1] f_nd[2] f_nd[3]
dump_modify d format float %.17g sort id
run 0
print "UBMD virial $(c_pvir[1]:%.17g) $(c_pvir[2]:%.17g) $(c_pvir[3]:%.17g) $(c_pvir[4]:%.17g) $(c_pvir[5]:%.17g) $(c_pvir[6]:%.17g)"
print "UBMD fdvirial $(f_nv[1]:%.17g) $(f_nv[2]:%.17g) $(f_nv[3]:%.17g) $(f_nv[4]:%.17g) $(f_nv[5]:%.17g) $(f_nv[6]:%.17g)"
"""
    _, _, res = run_lmp(deck, tmp_path)
    _, cols = read_dump_forces(tmp_path / "fd.dump")
    f, fd = cols[:, :3], cols[:, 3:]
    # central differences with delta 1e-4 Å: error ~ delta^2 * f''' ~ 1e-8 relative here
    assert rel_err(f, fd) < 1e-6
    # fix numdiff/virial orders its vector in Voigt order (xx yy zz yz xz xy)
    fdv = res["fdvirial"]
    assert rel_err(res["virial"], [fdv[0], fdv[1], fdv[2], fdv[5], fdv[4], fdv[3]]) < 1e-6


def test_bias_forces_are_minus_gradient_of_biased_energy(bias_model, cell_atoms, tmp_path):
    """With fixed scales the bias is a conservative force: F_b = tau s du/dR; compared with a
    central difference of the reported bias energy (-tau s u) under displace_atoms."""
    write_data(tmp_path / "data.lmp", cell_atoms, ELEMENTS)
    h = 1e-4
    deck = header() + f"""
pair_style ubmd bias_forces 0.5 fixed_scales 40.0 0.0
pair_coeff * * {bias_model} H C O
compute g all pair ubmd
thermo_style custom step pe c_g[2]
thermo_modify format float %.17g
group one id 5
run 0
print "UBMD force $(fx[5]:%.17g) $(fy[5]:%.17g) $(fz[5]:%.17g)"
"""
    for d, axis in enumerate("xyz"):
        for sgn, tag in ((1, "p"), (-1, "m")):
            move = ["0", "0", "0"]
            move[d] = repr(sgn * h)
            back = ["0", "0", "0"]
            back[d] = repr(-sgn * h)
            deck += f"""displace_atoms one move {' '.join(move)} units box
run 0
print "UBMD {axis}{tag} $(pe:%.17g) $(c_g[2]:%.17g)"
displace_atoms one move {' '.join(back)} units box
"""
    _, _, res = run_lmp(deck, tmp_path)
    fd = []
    for axis in "xyz":
        ep, bp = res[axis + "p"]
        em, bm = res[axis + "m"]
        fd.append(-((ep + bp) - (em + bm)) / (2 * h))
    assert rel_err(res["force"], fd) < 1e-6


@pytest.mark.skipif(mpirun() is None, reason="mpirun not found")
def test_adaptive_scale_window_and_ranks_over_md(model_path, cell_atoms, tmp_path):
    """Biased NVT-like MD (window 5): s_F = 0 during the first W-1 evaluations, then > 0; the
    trajectory on 2 ranks equals the serial one."""
    deck_tpl = header() + f"""
pair_style ubmd bias_forces 0.2 bias_stress 0.1 window 5
pair_coeff * * {model_path} H C O
compute g all pair ubmd
velocity all create 300.0 4928459 loop geom
timestep 0.0005
fix nve all nve
thermo_style custom step pe c_g[1] c_g[3] c_g[4]
thermo_modify format float %.17g
run 3
print "UBMD early $(c_g[3]:%.17g) $(c_g[4]:%.17g)"
run 6
print "UBMD late $(pe:%.17g) $(c_g[1]:%.17g) $(c_g[3]:%.17g) $(c_g[4]:%.17g)"
dump fd all custom 1 forces.dump id x y z fx fy fz
dump_modify fd format float %.17g sort id
run 0
"""
    write_data(tmp_path / "data.lmp", cell_atoms, ELEMENTS)
    res = {}
    for n in (1, 2):
        _, _, res[n] = run_lmp(deck_tpl, tmp_path, n)
        _, res[n]["xf"] = read_dump_forces(tmp_path / "forces.dump")
    assert res[1]["early"] == [0.0, 0.0]        # 4 evaluations < window 5
    assert res[1]["late"][2] > 0 and res[1]["late"][3] > 0
    assert rel_err(res[2]["late"], res[1]["late"]) < 1e-10
    assert rel_err(res[2]["xf"], res[1]["xf"]) < 1e-10


def test_nve_energy_conservation(model_path, cell_atoms, tmp_path):
    """Bias off: velocity Verlet conserves the total energy. Bound: with dt = 0.5 fs the RMS
    fluctuation of E_tot scales as dt^2 and has no secular drift for a conservative, smooth
    force field; a wrong force (sign, missing ghost term, virial-only bug) drifts by >1e-2
    eV/atom over 0.2 ps. We require max|E(t) - E(0)| < 2e-4 eV/atom and the fitted drift
    < 1e-4 eV/atom/ps (which the same run at 2x dt exceeds only through the dt^2 fluctuation)."""
    atoms = cell_atoms.repeat((2, 1, 1))
    write_data(tmp_path / "data.lmp", atoms, ELEMENTS)
    deck = header() + f"""
pair_style ubmd uncertainty none
pair_coeff * * {model_path} H C O
velocity all create 300.0 12345 loop geom
timestep 0.0005
fix nve all nve
thermo 10
thermo_style custom step time etotal pe ke
thermo_modify format float %.17g
run 400
"""
    _, out, _ = run_lmp(deck, tmp_path)
    rows = []
    for line in (tmp_path / "log.lammps").read_text().splitlines():
        parts = line.split()
        if len(parts) == 5:
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                pass
    rows = np.array(rows)
    t, etot = rows[:, 1], rows[:, 2]
    n = len(atoms)
    assert len(rows) >= 40
    dev = np.abs(etot - etot[0]).max() / n
    slope = abs(np.polyfit(t, etot, 1)[0]) / n
    assert dev < 2e-4, dev
    assert slope < 1e-4, slope
    assert np.ptp(rows[:, 3]) / n > 10 * dev   # pe really moves: the test is not vacuous


def test_float32_evaluation(model_path, cell_atoms, tmp_path):
    """dtype float32 casts the float64 model: close to float64 (single precision)."""
    ref = reference(model_path, cell_atoms)
    got = lammps_single_point(model_path, cell_atoms, tmp_path, "dtype float32")
    assert "float32 cast from float64" in got["log"]
    assert rel_err(got["energy"], ref["energy"]) < 1e-5
    assert rel_err(got["forces"], ref["forces"]) < 1e-3
    assert 1e-12 < rel_err(got["forces"], ref["forces"])   # really evaluated in float32


@pytest.mark.skipif(mpirun() is None, reason="mpirun not found")
def test_per_atom_energy_and_virial_sum_to_global(model_path, cell_atoms, tmp_path):
    """compute pe/atom and stress/atom (bias stress on, 2 ranks: ghost contributions are
    reverse-communicated by LAMMPS) sum to pe and to the global virial."""
    write_data(tmp_path / "data.lmp", cell_atoms.repeat((2, 1, 1)), ELEMENTS)
    deck = header() + f"""
pair_style ubmd bias_forces 0.3 bias_stress 0.4 window 1
pair_coeff * * {model_path} H C O
compute pa all pe/atom
compute sa all stress/atom NULL virial
compute esum all reduce sum c_pa
compute ssum all reduce sum c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6]
compute pvir all pressure NULL virial
variable vol equal vol
thermo_style custom step pe c_esum c_ssum[1] c_pvir[1]
run 0
print "UBMD pe $(pe:%.17g) $(c_esum:%.17g)"
print "UBMD sum $(c_ssum[1]:%.17g) $(c_ssum[2]:%.17g) $(c_ssum[3]:%.17g) $(c_ssum[4]:%.17g) $(c_ssum[5]:%.17g) $(c_ssum[6]:%.17g)"
print "UBMD glob $(-c_pvir[1]*v_vol:%.17g) $(-c_pvir[2]*v_vol:%.17g) $(-c_pvir[3]*v_vol:%.17g) $(-c_pvir[4]*v_vol:%.17g) $(-c_pvir[5]*v_vol:%.17g) $(-c_pvir[6]*v_vol:%.17g)"
"""
    _, _, res = run_lmp(deck, tmp_path, 2)
    assert rel_err(res["pe"][1], res["pe"][0]) < 1e-12
    assert rel_err(res["sum"], res["glob"]) < 1e-10
