"""``ubmd md`` / ASE walkers: the bias drives MD to higher uncertainty; NPT moves the full cell;
the threshold stops a run and its triggering frame is a candidate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from ubmd.config import TrainRunConfig, from_dict
from ubmd.md.task import runaway_temperature


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny posterior-uncertainty model trained on near-lattice EMT Cu/Al cells (8 atoms)."""
    from ubmd.training import train_from_config

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(16):
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((1, 1, 2))
        a.symbols[[0, 5]] = "Al"
        a.positions += rng.normal(0, 0.06, a.positions.shape)
        a.calc = EMT()
        a.get_potential_energy()
        a.get_stress()
        frames.append(a)
    out = tmp_path_factory.mktemp("md_model")
    cfg = from_dict(TrainRunConfig, {
        "model": {"cutoff": 4.0, "n_radial": 4, "n_basis": 6, "hidden": [16, 16]},
        "training": {"max_epochs": 60, "batch_size": 4, "lr": 0.01, "dtype": "float64",
                     "progress": False},
        "uncertainty": {"kind": "posterior"}, "data": {"valid_fraction": 0.25},
        "output": str(out)})
    train_from_config(cfg, frames)
    start = out / "start.extxyz"
    frames[0].write(start)
    return out / "model.pt", start


def _md(model_file, tmp_path, name, *extra):
    from ubmd.cli.md import main

    model, start = model_file
    out = tmp_path / name
    rc = main([str(model), str(start), "--out", str(out), "--temperature", "300", "--steps", "200",
               "--log-every", "5", "--sample-every", "50", "--window", "20", *extra])
    assert rc == 0
    return out, np.load(out / "trace.npz"), json.loads((out / "summary.json").read_text())


def test_bias_pushes_to_higher_uncertainty(model_file, tmp_path):
    """Same start, same seed (same initial velocities and Langevin noise): with the bias the mean
    total uncertainty after the unbiased window is clearly higher. (This tiny model leaves
    physics within 200 steps at 300 K, with the bias sooner: u_i reaches 25 eV/Å and the
    runaway guard stops the run at 2.44x the target temperature, its level for 8 atoms in ASE; the
    comparison is over the steps both ran.)"""
    for seed in ("1", "2"):
        _, plain, s0 = _md(model_file, tmp_path, f"plain{seed}", "--seed", seed)
        _, biased, s1 = _md(model_file, tmp_path, f"biased{seed}", "--seed", seed,
                            "--tau-forces", "0.5")
        for s in (s0, s1):
            assert s["stop_reason"] in ("max_steps", "runaway")
            if s["stop_reason"] == "runaway":
                # the Langevin walkers' FixCom leaves 3N - 3 = 21 kinetic degrees of freedom
                # for 8 atoms (ASE's get_temperature counts those): 2.57 x 300 K
                assert s["max_temperature_K"] > s["runaway_temperature_K"]
                assert s["runaway_temperature_K"] == pytest.approx(runaway_temperature(300, 21, 1.5))
        assert np.allclose(plain["uncertainty"][:4], biased["uncertainty"][:4])  # W = 20 unbiased
        last = min(s0["n_steps"], s1["n_steps"])
        u0 = plain["uncertainty"][(plain["step"] > 20) & (plain["step"] <= last)].mean()
        u1 = biased["uncertainty"][(biased["step"] > 20) & (biased["step"] <= last)].mean()
        assert u1 > 1.2 * u0, (seed, u0, u1)
        assert np.all(plain["bias_energy"] == 0) and np.all(biased["bias_energy"][biased["step"] > 20] < 0)


def test_npt_full_cell_and_threshold_stop(model_file, tmp_path):
    out, trace, s = _md(model_file, tmp_path, "npt", "--ensemble", "npt", "--pressure", "10000",
                        "--tau-forces", "0.2", "--tau-stress", "0.2", "--pdamp", "500",
                        "--steps", "100", "--sample-every", "20", "--seed", "2")
    vol = trace["volume"]
    assert s["stop_reason"] == "max_steps" and trace["temperature"].max() < 1000
    assert np.isfinite(vol).all() and np.ptp(vol) > 1.0  # Å^3: the cell moves
    from ubmd.data import read_structures

    frames = read_structures(out / "candidates.extxyz")
    cells = np.array([f.cell.array for f in frames])
    off = cells[:, ~np.eye(3, dtype=bool)]
    assert np.ptp(off, axis=0).max() > 1e-6  # off-diagonal cell components move too
    # a threshold just above the start's largest atomic uncertainty stops the run early
    thr = float(trace["max_atomic_uncertainty"][0]) * 1.5
    out2, trace2, s2 = _md(model_file, tmp_path, "stop", "--tau-forces", "1.0",
                           "--threshold", f"{thr:.6g}")
    assert s2["stop_reason"] == "threshold" and s2["n_steps"] < 200
    last = read_structures(out2 / "candidates.extxyz")[-1]
    assert last.info["trigger"] and last.info["max_atomic_uncertainty"] > thr
    assert last.info["step"] == s2["n_steps"]


def test_md_cli_errors(tmp_path, model_file, capsys):
    from ubmd.cli.md import main

    model, start = model_file
    assert main([str(tmp_path / "missing.pt"), str(start), "--out", str(tmp_path / "x")]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert main([str(model.parent), str(start), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and f"did you mean {model}" in err

    def error(*flags, start=start):
        assert main([str(model), str(start), "--out", str(tmp_path / "y"), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ubmd md: error: ") and "walkers." not in err, err
        return err

    # errors name this command's flags, not the YAML keys of an AL config
    assert "set --ensemble to npt or --tau-stress to 0" in error("--tau-stress", "0.3")
    assert "--sample-every (50) must not exceed --steps (5)" in error("--steps", "5",
                                                                      "--sample-every", "50")
    assert "--temperature must be > 0" in error("--temperature", "0")
    assert "--weights: 'h' not chemical symbol" in error("--weights", "h=0")
    assert "model elements: Al, Cu" in error("--weights", "S=0")
    # a missing start file is reported as such (not as a --sample-every/--steps clash)
    assert "start structure not found" in error("--steps", "5", start=tmp_path / "none.xyz")
    # an element the model does not know: a plain message, no exception class name
    from ase import Atoms

    Atoms("SCu", positions=[[0, 0, 0], [2.5, 0, 0]]).write(tmp_path / "s.xyz")
    err = error(start=tmp_path / "s.xyz")
    assert "element(s) S" in err and "Error" not in err


def test_md_cli_few_steps_and_help(tmp_path, model_file, capsys):
    """--steps below the default --sample-every saves the last frame instead of failing; --help
    shows the defaults."""
    from ubmd.cli.md import main

    model, start = model_file
    assert main([str(model), str(start), "--out", str(tmp_path / "a"), "--steps", "5"]) == 0
    from ubmd.data import read_structures

    assert [f.info["step"] for f in read_structures(tmp_path / "a" / "candidates.extxyz")] == [5]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "(default: 1000)" in out and "(default: nvt)" in out and "(default: 300.0)" in out


def test_ase_walker_ignores_weights_of_elements_not_in_the_model(model_file, tmp_path):
    """walkers.weights may name elements of other systems (docs/config.md): the ASE walkers drop
    them, as the LAMMPS decks do, while the calculator itself refuses them."""
    from ubmd.al.config import WalkerConfig
    from ubmd.config import check
    from ubmd.md import WalkerTask, run_walker
    from ubmd.data import read_structures

    model, start = model_file
    p = check(WalkerConfig(max_steps=4, sample_every=2, log_every=2, window=2,
                                     weights={"H": 0.0, "Cu": 0.5}), "walkers")
    task = WalkerTask(0, "ase", str(model), read_structures(start)[0], str(tmp_path / "w"),
                      300.0, 0.0, 1, p)
    summary = run_walker(task)
    assert summary["stop_reason"] == "max_steps" and summary["n_steps"] == 4


def test_a_registered_engine_runs_in_worker_processes(tmp_path):
    """register_engine with 'module:function': the task carries the reference, so a worker
    process (which knows only the built-ins) imports and runs it; a function of __main__ is
    refused with the fix."""
    import sys

    from ase import Atoms

    from ubmd.executors import LocalExecutor
    from ubmd.md import MDSettings, WalkerTask, register_engine, run_walker
    from ubmd.md.engines import ENGINES, engine_reference, resolve_engine

    sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
    register_engine("echo", "executor_jobs:echo_engine")
    try:
        ref = resolve_engine("echo", None)
        assert ref == "executor_jobs:echo_engine"
        task = WalkerTask(index=3, engine=ref, model_file="none.pt", start=Atoms("H2"),
                          workdir=str(tmp_path / "w"), temperature=300.0, pressure=0.0, seed=0,
                          params=MDSettings())
        with LocalExecutor(1) as ex:
            (summary,) = dict(ex.map_unordered(run_walker, [task])).values()
        assert summary["stop_reason"] == "max_steps" and summary["engine"] == "echo"
        register_engine("local", lambda t: {})
        with pytest.raises(ValueError, match="register it as 'module:function'"):
            engine_reference("local")
    finally:
        ENGINES.pop("echo", None)
        ENGINES.pop("local", None)


def _crossings(out):
    from ubmd.data import read_structures

    frames = read_structures(out / "candidates.extxyz")
    steps = [f.info["step"] for f in frames]
    assert steps == sorted(set(steps))  # one frame per step, in order
    return frames, [f for f in frames if f.info["trigger"]]


def test_reflections_return_to_the_last_sampled_frame(model_file, tmp_path):
    """--reflections 2: the first two crossings are kept as candidates and the walker goes back
    (it is not stopped); the third crossing stops it. Every crossing frame is over the threshold,
    every sampled frame under it; without reflections the first crossing stops the run."""
    out0, trace0, _ = _md(model_file, tmp_path, "probe", "--tau-forces", "1.0")
    thr = float(trace0["max_atomic_uncertainty"][0]) * 1.5
    out1, _, s1 = _md(model_file, tmp_path, "stop", "--tau-forces", "1.0", "--threshold",
                      f"{thr:.6g}", "--steps", "400", "--sample-every", "10")
    out2, trace2, s2 = _md(model_file, tmp_path, "reflect", "--tau-forces", "1.0", "--threshold",
                           f"{thr:.6g}", "--steps", "400", "--sample-every", "10",
                           "--reflections", "2")
    assert s1["stop_reason"] == "threshold" and s1["reflections"] == 0
    assert s2["stop_reason"] == "threshold" and s2["reflections"] == 2
    assert s2["n_steps"] > s1["n_steps"]
    frames, crossings = _crossings(out2)
    assert len(crossings) == 3 and crossings[-1].info["step"] == s2["n_steps"]
    assert all(f.info["max_atomic_uncertainty"] > thr for f in crossings)
    assert all(f.info["max_atomic_uncertainty"] <= thr for f in frames if not f.info["trigger"])
    assert np.all(np.diff(trace2["step"]) > 0)


def test_runaway_level_uses_the_degrees_of_freedom_of_the_temperature(model_file, tmp_path):
    """The guard's level counts the kinetic degrees of freedom that the walker's temperature
    is measured with: 3N - 3 under Langevin (FixCom; as the LAMMPS walkers), 3N under
    Nose-Hoover (no constraint; ASE then divides by 3N). It used 3N for both, so an unbiased
    8-atom Langevin walker reached it 2.4 times as often as RUNAWAY_FLUCTUATION_P."""
    for thermostat, n_dof in (("langevin", 21), ("nose_hoover", 24)):
        _, _, s = _md(model_file, tmp_path, thermostat, "--steps", "2", "--sample-every", "1",
                      "--thermostat", thermostat)
        assert s["runaway_temperature_K"] == pytest.approx(runaway_temperature(300, n_dof, 1.5))


def test_reflected_walker_counts_every_md_step(model_file, tmp_path):
    """After a reflection the step numbers run on by one per MD step, as in the LAMMPS walkers
    (the restored frame is not an MD step): with log_every 1 the trace has every step from 0 to
    n_steps. (The first segment after a reflection used to start one step late.)"""
    _, trace0, _ = _md(model_file, tmp_path, "probe", "--tau-forces", "1.0")
    thr = float(trace0["max_atomic_uncertainty"][0]) * 1.5
    _, trace, s = _md(model_file, tmp_path, "reflect", "--tau-forces", "1.0", "--threshold",
                      f"{thr:.6g}", "--steps", "400", "--sample-every", "10", "--log-every", "1",
                      "--reflections", "2")
    assert s["reflections"] >= 1
    assert list(trace["step"]) == list(range(s["n_steps"] + 1))


@pytest.mark.lammps
@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_lammps_reflections_match_the_rule(model_file, tmp_path, ensemble):
    """The LAMMPS engine's deck loop: the same rule as the ASE engine (k reflections, the
    (k+1)-th crossing stops; read_dump restores the last sampled frame, and under NPT its cell;
    timesteps run on)."""
    from lammps_helpers import PLUGIN

    from ubmd.config import check
    from ubmd.data import read_structures
    from ubmd.md import MDSettings, WalkerTask, run_walker

    if not PLUGIN.exists():
        pytest.skip("ubmd LAMMPS plugin not built")
    model, start = model_file
    base = dict(max_steps=400, sample_every=10, log_every=5, tau_forces=1.0, window=20,
                threshold=100.0, ensemble=ensemble, tau_stress=0.5 if ensemble == "npt" else 0.0,
                pdamp=200.0, pressure=5000.0)
    probe = run_walker(WalkerTask(0, "lammps", str(model), read_structures(start)[0],
                                  str(tmp_path / "probe"), 300.0, 0.0, 3,
                                  check(MDSettings(**base), "md")))
    thr = float(np.load(tmp_path / "probe" / "trace.npz")["max_atomic_uncertainty"][0]) * 1.5
    assert probe["reflections"] == 0
    s = run_walker(WalkerTask(0, "lammps", str(model), read_structures(start)[0],
                              str(tmp_path / "reflect"), 300.0, 0.0, 3,
                              check(MDSettings(**{**base, "threshold": thr, "reflections": 2}),
                                    "md")))
    assert s["stop_reason"] in ("threshold", "max_steps"), s
    frames, crossings = _crossings(tmp_path / "reflect")
    assert len(crossings) == s["reflections"] + (s["stop_reason"] == "threshold")
    assert s["reflections"] == 2 or s["stop_reason"] == "max_steps"
    assert all(f.info["max_atomic_uncertainty"] > thr for f in crossings)
    assert all(f.info["max_atomic_uncertainty"] <= thr for f in frames if not f.info["trigger"])
    deck = (tmp_path / "reflect" / "in.walker.lmp").read_text()
    assert "variable reflect loop 3" in deck and "timestep no" in deck
    assert "fix runaway all halt 1 v_runaway_tkin" in deck  # the guard holds in every segment
    if ensemble == "npt":  # the cell moves, and a reflection restores the sampled frame's cell
        assert "box yes" in deck
        cells = {f.info["step"]: f.cell.array for f in frames}
        assert np.ptp([c[0, 0] for c in cells.values()]) > 1e-4
