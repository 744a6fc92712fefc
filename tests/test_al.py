"""Active-learning campaigns: initial data, config, units, walkers, end-to-end runs with EMT labels,
kill -9 and resume without recomputing a label, failing labeller, LAMMPS walkers, executors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from ubmd.al import al_config_from_dict, resume_campaign, run_campaign
from ubmd.al.config import WalkerConfig, load_al_config
from ubmd.al.initial import initial_structures, perturbed_copies

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from al_calcs import fingerprint  # noqa: E402


def start_cell():
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((1, 1, 2))
    s = a.get_chemical_symbols()
    s[0], s[5] = "Al", "Al"
    a.set_chemical_symbols(s)
    return a


def campaign_dict(tmp_path, **over) -> dict:
    start = tmp_path / "start.extxyz"
    start_cell().write(start)
    d = {
        "output": str(tmp_path / "run"),
        "label_budget": 24,
        "max_rounds": 3,
        "initial": {"structures": str(start), "n_perturbed": 7, "seed": 1},
        "reference": {"calculator": "emt", "n_workers": 1},
        "walkers": {"engine": "ase", "n_walkers": 2, "temperature": 900, "max_steps": 60,
                    "sample_every": 6, "log_every": 5, "threshold": 50.0, "tau_forces": 0.25,
                    "window": 10},
        "executor": {"kind": "local", "n_workers": 1, "inline": True},  # no spawn per round
        "selection": {"method": "max_det", "batch_size": 8},
        "data": {"valid_fraction": 0.25},
        "model": {"cutoff": 4.0, "n_radial": 4, "n_basis": 6, "hidden": [16, 16]},
        "training": {"max_epochs": 40, "batch_size": 4, "lr": 0.01, "dtype": "float64",
                     "progress": False, "patience": 40},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


def rounds(out) -> list[dict]:
    return json.loads((Path(out) / "campaign.json").read_text())["rounds"]


# ---------------------------------------------------------------------------------- unit level
def test_initial_structures_shifts_and_strain():
    cell = start_cell()
    frames = initial_structures([cell], n_perturbed=7, seed=0)
    assert len(frames) == 8
    assert np.allclose(frames[0].positions, cell.positions)
    for f in frames[1:]:
        # undo the strain: the remaining shift is within +-0.02 Å
        eps = np.linalg.solve(cell.cell.array, f.cell.array) - np.eye(3)
        assert np.allclose(eps, eps.T, atol=1e-12) and np.abs(eps).max() <= 0.05 + 1e-12
        assert np.abs(eps).max() > 1e-3
        affine = cell.positions @ (np.eye(3) + eps)
        shift = f.positions - affine
        assert np.abs(shift).max() <= 0.02 + 1e-12 and np.abs(shift).max() > 1e-4
    mol = molecule("H2O")
    copies = perturbed_copies(mol, 3, rng=np.random.default_rng(0))
    for c in copies:
        assert np.allclose(c.cell.array, mol.cell.array)
        assert np.abs(c.positions - mol.positions).max() <= 0.02


def test_walker_starts_previous_initial_dataset(tmp_path):
    """Which structures a round deals its walkers: ``previous`` its labelled batch, ``initial``
    round 0's, ``dataset`` its whole data set in an order fixed by (seed, round), every origin
    still getting walkers."""
    from ubmd.al.layout import CampaignLayout
    from ubmd.al.stages import walker_starts
    from ubmd.al.walkers import start_groups, walker_start
    from ubmd.io import write_frames_atomic as write_frames

    def frame(x, origin):
        a = molecule("H2O")
        a.positions[0, 0] = x
        a.info["start_index"] = origin
        return a

    layout = CampaignLayout(tmp_path)
    r0, r2 = layout.round(0), layout.round(2)
    for rl in (r0, r2):
        rl.dir.mkdir(parents=True)
    first = [frame(0.1 * i, i % 2) for i in range(4)]
    batch = [frame(5 + 0.1 * i, i % 2) for i in range(4)]
    data = first + [frame(2 + 0.1 * i, i % 2) for i in range(8)] + batch
    write_frames(first, r0.labelled)
    write_frames(batch, r2.labelled)
    write_frames(data, r2.dataset)

    def xs(frames):
        return [round(float(f.positions[0, 0]), 3) for f in frames]

    assert xs(walker_starts(layout, r2, "previous", 7)) == xs(batch)
    assert xs(walker_starts(layout, r2, "initial", 7)) == xs(first)
    mixed = walker_starts(layout, r2, "dataset", 7)
    assert sorted(xs(mixed)) == sorted(xs(data)) and xs(mixed) != xs(data)
    assert xs(walker_starts(layout, r2, "dataset", 7)) == xs(mixed)  # a resume deals the same
    assert xs(walker_starts(layout, r2, "dataset", 8)) != xs(mixed)
    groups = start_groups(mixed)
    dealt = [walker_start(groups, k) for k in range(4)]
    assert sorted(f.info["start_index"] for f in dealt) == [0, 0, 1, 1]
    cfg = al_config_from_dict(campaign_dict(tmp_path, walkers={"start_from": "dataset"}))
    assert cfg.walkers.start_from == "dataset"
    with pytest.raises(ValueError, match="start_from"):
        al_config_from_dict(campaign_dict(tmp_path, walkers={"start_from": "everywhere"}))


def test_config_validation(tmp_path):
    d = campaign_dict(tmp_path)
    cfg = al_config_from_dict({**d, "training": {**d["training"], "lr": "5e-3"}})
    assert cfg.training.lr == 5e-3  # YAML 1.1 reads 5e-3 as a string: coerced
    with pytest.raises(ValueError, match="unknown config key"):
        al_config_from_dict({**d, "walkers": {**d["walkers"], "temprature": 300}})
    with pytest.raises(ValueError, match="walkers.engine"):
        al_config_from_dict({**d, "walkers": {**d["walkers"], "engine": "gromacs"}})
    with pytest.raises(ValueError, match="tau_stress"):
        al_config_from_dict({**d, "walkers": {**d["walkers"], "tau_stress": 0.1}})
    with pytest.raises(ValueError, match="reference.calculator"):
        al_config_from_dict({**d, "reference": {}})
    # relative paths in a YAML file are relative to the file
    import yaml

    (tmp_path / "sub").mkdir()
    d2 = dict(d, initial={"structures": "../start.extxyz"})
    (tmp_path / "sub" / "c.yaml").write_text(yaml.safe_dump(d2))
    cfg = load_al_config(tmp_path / "sub" / "c.yaml")
    assert Path(cfg.initial.structures).resolve() == (tmp_path / "start.extxyz").resolve()


def test_unit_conversions_at_the_boundaries():
    from ase import units

    from ubmd.md.ase_engine import BAR_TO_EV_PER_A3
    from ubmd.md.lammps_engine import metal_times

    p = WalkerConfig(timestep=0.5, friction=0.01, tdamp=100.0, pdamp=1000.0)
    t = metal_times(p)
    assert t == pytest.approx({"timestep": 0.0005, "langevin_damp": 0.1, "tdamp": 0.1, "pdamp": 1.0})
    # 1 GPa = 10^4 bar = 6.2415e-3 eV/Å^3
    assert 1e4 * BAR_TO_EV_PER_A3 == pytest.approx(units.GPa) == pytest.approx(6.2415091e-3)


def test_lammps_deck_and_dump_reader(tmp_path):
    from ubmd.md import WalkerTask
    from ubmd.md.lammps_engine import deck_text, dump_atoms, parse_thermo
    from ubmd.analysis.readers import read_dump_columns

    p = WalkerConfig(engine="lammps", ensemble="npt", tau_stress=0.1, weights={"Al": 0.0},
                     max_steps=1000, sample_every=50, threshold=1.2)
    task = WalkerTask(3, "lammps", "/m/model.pt", start_cell(), str(tmp_path), 600.0, 2500.0, 7, p,
                      species=["Al", "Cu"])
    deck = deck_text(task, Path("/p/ubmdplugin.so"), True, "p p p")
    for line in ("timestep 0.0005", "change_box all triclinic",
                 "pair_style ubmd tau_forces 0.25 window 100 tau_stress 0.1 weights Al 0",
                 "pair_coeff * * /m/model.pt Al Cu",
                 "fix integrate all npt temp 600 600 0.1 tri 2500 2500 1",
                 "fix stop all halt 1 v_umax > 1.2 error continue", "run 1000"):
        assert line in deck, line
    dump = tmp_path / "d.lammpstrj"
    dump.write_text("ITEM: TIMESTEP\n5\nITEM: NUMBER OF ATOMS\n2\n"
                    "ITEM: BOX BOUNDS xy xz yz pp pp pp\n0 4.5 0.5\n0 4 0\n0 4 0\n"
                    "ITEM: ATOMS id type x y z c_uatom\n2 1 1 1 1 0.3\n1 2 0 0 0 0.1\n")
    atoms = dump_atoms(read_dump_columns(dump)[0], ["Al", "Cu"])
    assert atoms.get_chemical_symbols() == ["Cu", "Al"]
    assert np.allclose(atoms.cell.array, [[4, 0, 0], [0.5, 4, 0], [0, 0, 4]])
    log = tmp_path / "log.lammps"
    log.write_text("Step Time Temp\n0 0 300\n10 0.005 310\nFix halt condition for fix-id stop met "
                   "on step 13 with value 1.5\nLoop time of 1 on 1 procs\n")
    cols, halted = parse_thermo(log)
    assert list(cols["Step"]) == [0, 10] and halted == {"step": 13, "value": 1.5, "fix": "stop"}
    # a walker with reflections: consecutive runs joined, a run's setup row (the restored frame
    # at the halting step) left out, every halt listed
    log.write_text("Step Time Temp\n0 0 300\n10 0.005 310\nFix halt condition for fix-id stop met "
                   "on step 13 with value 1.5\n13 0.0065 320\nLoop time of 1 on 1 procs\n"
                   "Step Time Temp\n13 0.0065 300\n20 0.01 305\n30 0.015 301\nFix halt condition "
                   "for fix-id stop met on step 31 with value 1.7\nLoop time of 1 on 1 procs\n")
    cols, halts = parse_thermo(log, all_halts=True)
    assert list(cols["Step"]) == [0, 10, 13, 20, 30] and list(cols["Temp"])[2] == 320
    assert [h["step"] for h in halts] == [13, 31]
    # the runaway guard's lines: a fix halt on the kinetic temperature (2.57 x 600 K, 8 atoms)
    # after the start's grace, 1.5x that during it
    assert "variable runaway_tkin equal ternary(step>" in deck
    t_max = float(deck.split("v_runaway_tkin > ")[1].split()[0])
    assert abs(t_max / 600.0 - 2.57) < 0.01
    t_start = float(deck.split("v_runaway_tkin_start > ")[1].split()[0])
    assert t_start == pytest.approx(1.5 * t_max)


def test_lammps_langevin_walker_keeps_the_target_temperature(tmp_path):
    """The Langevin lines of a walker deck thermostat a mixed-mass molecule (the composition of
    alanine dipeptide, H12C6N2O2) at the target: mean kinetic temperature over 200 ps within
    8 K of 300 K (standard error about 1 K). Forces are switched off (``pair_style zero``) so only
    the thermostat acts; ``fix langevin ... zero yes`` fails this with 339 K."""
    from ase import Atoms

    from ubmd.md import WalkerTask
    from ubmd.md.lammps_engine import deck_text, parse_thermo, write_data_file
    from ubmd.plugin import find_executable

    lmp = find_executable("lmp")
    if lmp is None:
        pytest.skip("LAMMPS executable lmp not found")
    rng = np.random.default_rng(0)
    mol = Atoms("H12C6N2O2", positions=rng.uniform(0, 8, (22, 3)))
    species = ["H", "C", "N", "O"]
    p = WalkerConfig(engine="lammps", ensemble="nvt", thermostat="langevin", max_steps=400_000,
                     log_every=50, threshold=1.5, reflections=0)
    task = WalkerTask(0, "lammps", "/m/model.pt", mol, str(tmp_path), 300.0, 0.0, 11, p,
                      species=species)
    keep = ("units", "atom_style", "atom_modify", "boundary", "read_data", "timestep", "velocity",
            "fix integrate", "fix thermostat", "fix zeromom")
    deck = [line for line in deck_text(task, Path("/p/ubmdplugin.so"), False, "s s s").splitlines()
            if line.startswith(keep)]
    deck += ["pair_style zero 5.0", "pair_coeff * *", "thermo 50", "run 400000"]
    (tmp_path / "in.lmp").write_text("\n".join(deck) + "\n")
    write_data_file(mol, tmp_path / "start.data", species, 5.0)
    subprocess.run([lmp, "-in", "in.lmp", "-log", "log.lammps", "-screen", "none", "-nocite"],
                   cwd=tmp_path, check=True)
    temp = parse_thermo(tmp_path / "log.lammps")[0]["Temp"][100:]
    assert len(temp) > 7000
    assert abs(temp.mean() - 300.0) < 8.0, temp.mean()


# ---------------------------------------------------------------------------------- campaigns
def _test_set(n=6, seed=5):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = start_cell()
        a.positions += rng.normal(0, 0.12, a.positions.shape)
        a.calc = EMT()
        a.get_potential_energy()
        out.append(a)
    return out


def _force_rmse(model_file, frames):
    from ubmd.calculator import UBMDCalculator

    calc = UBMDCalculator(model_file, uncertainty="none")
    err = []
    for a in frames:
        ref = a.get_forces()
        b = a.copy()
        b.calc = calc
        err.append(b.get_forces() - ref)
    return float(np.sqrt(np.mean(np.concatenate(err) ** 2)))


@pytest.mark.campaign
def test_campaign_ase_end_to_end(tmp_path):
    d = campaign_dict(tmp_path)
    result = run_campaign(al_config_from_dict(d), log=lambda s: None)
    assert result["finished"] and result["n_rounds"] == 3
    rs = rounds(d["output"])
    sizes = [r["n_dataset"] for r in rs]
    assert sizes == [8, 16, 24]  # grows by B = 8 per round
    assert result["labels_used"] == 24
    for r in rs[:-1]:
        assert r["n_pool"] >= 8 and r["n_selected"] == 8 and r["engine"] == "ase"
        assert set(r["timings_s"]) >= {"reference", "training", "sampling", "selection"}
        assert all(w["stop_reason"] in ("threshold", "max_steps") for w in r["walkers"])
    out = Path(d["output"])
    test = _test_set()
    first = _force_rmse(out / "round_000" / "train" / "model.pt", test)
    last = _force_rmse(out / "round_002" / "train" / "model.pt", test)
    assert last < first, (first, last)  # errors on fixed held-out MD-like frames fall
    assert rs[-1]["errors_valid"]["forces_rmse"] > 0
    log = (out / "log.txt").read_text().splitlines()
    assert len(log) == 3 and log[0].startswith("round 0: labels 8/24")
    # selected frames carry their origin and uncertainties; walkers wrote traces
    sel = (out / "round_000" / "selected.extxyz").read_text()
    assert "max_atomic_uncertainty" in sel and "walker" in sel
    trace = np.load(out / "round_000" / "walkers" / "w00" / "trace.npz")
    assert len(trace["uncertainty"]) > 3
    # the report renders every plot from the campaign directory
    from ubmd.cli.al import main as al_main

    assert al_main(["report", str(out)]) == 0
    assert (out / "report" / "learning_curves.png").stat().st_size > 1000


@pytest.mark.campaign
def test_campaign_kill_and_resume_recomputes_no_label(tmp_path):
    counter = tmp_path / "calls.txt"
    calc = {"import": f"{FIXTURES / 'al_calcs.py'}:CountingEMT",
            "kwargs": {"counter": str(counter), "kill_after": 11}}
    d = campaign_dict(tmp_path, reference={"calculator": calc, "n_workers": 1},
                      label_budget=20, training={"max_epochs": 10})
    cfg_path = tmp_path / "c.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(d))
    proc = subprocess.run([sys.executable, "-c", "import sys; from ubmd.cli import main; sys.exit(main())",
                           "al", "run", str(cfg_path)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert proc.returncode == -9, proc.stderr[-2000:]  # killed in round 1's label stage
    out = Path(d["output"])
    state = json.loads((out / "round_001" / "state.json").read_text())
    assert "label" not in state["stages"] and state["stages"]["propose"]["done"]
    assert len(list((out / "round_001" / "labels").glob("*.extxyz"))) == 3
    result = resume_campaign(out, log=lambda s: None)
    assert result["finished"] and result["labels_used"] == 20
    calls = counter.read_text().split()
    assert len(calls) == len(set(calls)) == 20  # every label computed exactly once
    dataset = (out / "round_002" / "dataset.extxyz")
    from ubmd.data import read_structures

    frames = read_structures(dataset)
    assert len(frames) == 20
    assert sorted(fingerprint(a) for a in frames) == sorted(calls)


@pytest.mark.campaign
def test_second_driver_on_a_live_campaign_is_refused(tmp_path):
    """Two drivers on one directory would write the same rounds over each other: while one holds
    the directory, another run or resume fails at once and changes nothing; once it is gone
    (closed here; killed with -9 in the resume test above) the directory is free again."""
    from ubmd.al.campaign import acquire_campaign_lock

    d = campaign_dict(tmp_path, label_budget=8, max_rounds=1)
    out = Path(d["output"])
    out.mkdir()
    holder = acquire_campaign_lock(out)
    with pytest.raises(RuntimeError, match=r"in use by pid \d+"):
        run_campaign(al_config_from_dict(d), log=lambda s: None)
    assert not list(out.glob("round_*"))
    holder.close()
    assert run_campaign(al_config_from_dict(d), log=lambda s: None)["finished"]


@pytest.mark.campaign
def test_campaign_failing_labeller_goes_on(tmp_path):
    calc = {"import": f"{FIXTURES / 'al_calcs.py'}:FailingEMT", "kwargs": {"every": 4}}
    d = campaign_dict(tmp_path, reference={"calculator": calc, "n_workers": 1}, label_budget=16,
                      max_rounds=2, training={"max_epochs": 8})
    result = run_campaign(al_config_from_dict(d), log=lambda s: None)
    assert result["finished"] and result["labels_used"] == 16
    out = Path(d["output"])
    n_failed = 0
    for r in (0, 1):
        fails = json.loads((out / f"round_{r:03d}" / "label_failures.json").read_text())["failures"]
        assert all("SCF not converged" in f["reason"] for f in fails)
        n_failed += len(fails)
    assert n_failed > 0
    assert result["rounds"][-1]["n_dataset"] == 16 - n_failed


@pytest.mark.campaign
def test_campaign_lammps_walkers(tmp_path):
    from ubmd.md.settings import LammpsConfig
    from ubmd.md.engines import lammps_available

    if not lammps_available(LammpsConfig()):
        pytest.skip("ubmd LAMMPS plugin not built (bash scripts/build_plugin.sh) or lmp missing")
    d = campaign_dict(tmp_path, label_budget=16, max_rounds=2, training={"max_epochs": 10},
                      walkers={"engine": "lammps", "ensemble": "npt", "tau_stress": 0.1,
                               "pressure": [0.0, 2000.0], "lammps": {"mpi_ranks": 2}})
    result = run_campaign(al_config_from_dict(d), log=lambda s: None)
    assert result["finished"]
    r0 = result["rounds"][0]
    assert r0["engine"] == "lammps" and r0["n_pool"] >= 8 and r0["n_selected"] == 8
    assert [r["n_dataset"] for r in result["rounds"]] == [8, 16]
    w = Path(d["output"]) / "round_000" / "walkers" / "w01"
    assert "tri 2000 2000" in (w / "in.walker.lmp").read_text()
    assert "on 2 procs" in (w / "log.lammps").read_text()  # mpirun -np 2 lmp
    assert np.isfinite(np.load(w / "trace.npz")["volume"]).all()
