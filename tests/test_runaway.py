"""The runaway guard: biased walkers stop before they leave physics (docs/al.md, "Runaway
guard"). Its level, the pair-style independent LAMMPS deck lines in a plain LAMMPS run, and
walkers driven by a coarse alanine dipeptide model at tau_F = 2 and 0.25, which without the
guard heat to tens of thousands of kelvin: with it they stop below 2x the target temperature."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from scipy.stats import chi2

from lammps_helpers import ROOT, lmp_exe, requires_plugin

DATA = ROOT / "examples" / "ala2" / "data" / "ala2_gfn2_300K.extxyz"
TARGET = 600.0


def test_runaway_level():
    from ubmd import runaway_temperature

    assert runaway_temperature(300.0, 3 * 108 - 3, 1.5) == pytest.approx(450.0)  # the factor
    # 22 atoms: the level thermal fluctuations reach with probability 1e-4 per step
    level = runaway_temperature(600.0, 63, 1.5)
    assert level == pytest.approx(600.0 * chi2.isf(1e-4, 63) / 63) and 1.79 < level / 600 < 1.82
    assert runaway_temperature(600.0, 21, 1.5) / 600 == pytest.approx(2.57, abs=0.01)
    assert runaway_temperature(600.0, 63, None) == np.inf
    assert runaway_temperature(600.0, 63, 2.5) == pytest.approx(1500.0)


def test_runaway_factor_is_a_checked_setting():
    from ubmd.al import al_config_from_dict
    from ubmd.md import MDSettings

    assert MDSettings().runaway_factor == 1.5
    with pytest.raises(ValueError, match="walkers.runaway_factor must be > 1"):
        al_config_from_dict({"initial": {"structures": "x.extxyz"}, "reference": {
            "calculator": "emt"}, "walkers": {"runaway_factor": 0.9}})


def _heated_lj(tmp_path, guard: list, steps: int):
    """A Lennard-Jones crystal that `fix heat` heats steadily (~7 K per step from 100 K) with
    the guard's lines: the thermo table and the halt; LAMMPS must run the commands after `run`."""
    from ubmd.md.lammps_engine import parse_thermo

    deck = ["units metal", "atom_style atomic", "boundary p p p", "lattice fcc 5.5",
            "region box block 0 3 0 3 0 3", "create_box 1 box", "create_atoms 1 box",
            "mass 1 39.95", "pair_style lj/cut 8.0", "pair_coeff 1 1 0.0104 3.4",
            "timestep 0.002", "velocity all create 100 7 mom yes dist gaussian",
            "fix integrate all nve", "fix heat all heat 1 50.0",  # eV/ps
            "thermo 1", "thermo_style custom step temp pe",
            *guard, f"run {steps}", "print AFTER_RUN"]
    (tmp_path / "in.lmp").write_text("\n".join(deck) + "\n")
    p = subprocess.run([lmp_exe(), "-in", "in.lmp", "-log", "log.lammps", "-nocite"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:]
    assert "AFTER_RUN" in p.stdout
    return parse_thermo(tmp_path / "log.lammps")


@requires_plugin
def test_deck_lines_stop_any_pair_style(tmp_path):
    """The guard's two lines (ubmd.md.lammps_engine.runaway_lines) in a Lennard-Jones run that
    `fix heat` heats steadily: LAMMPS stops at the first step above the level, says so in the
    log, and runs the commands after `run` (error continue)."""
    from ubmd.md.lammps_engine import runaway_lines

    thermo, halted = _heated_lj(tmp_path, runaway_lines(150.0), 5000)
    assert halted["fix"] == "runaway" and 150.0 < halted["value"] < 165.0
    assert halted["step"] < 5000 and thermo["Temp"][:-1].max() <= 150.0  # (its own row last)


def test_grace_steps_never_reach_into_the_bias():
    """The start's grace (a higher level while a strained start thermalises) lasts
    ``runaway_grace`` steps, for a biased walker at most its bias window (the bias is off then)."""
    from ubmd.md import MDSettings
    from ubmd.md.task import runaway_grace_steps

    assert MDSettings().runaway_grace == 200
    assert runaway_grace_steps(MDSettings(tau_forces=0.0)) == 200
    assert runaway_grace_steps(MDSettings(tau_forces=0.25, window=100)) == 100
    assert runaway_grace_steps(MDSettings(tau_forces=0.0, tau_stress=0.25, window=50)) == 50
    assert runaway_grace_steps(MDSettings(tau_forces=0.25, runaway_grace=0)) == 0
    with pytest.raises(ValueError, match="runaway_grace"):
        from ubmd.config import check
        check(MDSettings(runaway_grace=-1), "walkers")


@requires_plugin
@pytest.mark.parametrize("grace", [100000, 5])
def test_deck_lines_with_a_grace(tmp_path, grace):
    """With a grace, the level is 1.5x higher up to step `grace` (fix runaway_start) and the
    plain level holds after it (fix runaway: LAMMPS's ternary() on the step)."""
    from ubmd.md.lammps_engine import runaway_lines

    thermo, halted = _heated_lj(tmp_path, runaway_lines(150.0, grace=grace), 20000)
    if grace > 1000:  # heated past 150 K within the grace: only the start's level stops it
        assert halted["fix"] == "runaway_start" and 225.0 < halted["value"] < 245.0
        assert thermo["Temp"][:-1].max() <= 225.0
    else:
        assert halted["fix"] == "runaway" and 150.0 < halted["value"] < 165.0
        assert halted["step"] > grace


# ------------------------------------------------------------------ biased alanine dipeptide
@pytest.fixture(scope="module")
def coarse_model(tmp_path_factory):
    """A deliberately coarse alanine dipeptide model (40 frames of 300 K GFN2-xTB data, a small
    network, 60 epochs): what the first rounds of a campaign have. Biased at tau_F = 2 without
    the guard it reaches 10^4-10^6 K within 2000 steps (benchmarks/runaway_guard.py)."""
    import ubmd

    out = tmp_path_factory.mktemp("coarse_ala2")
    frames = ubmd.read_structures(DATA, index=":40")
    ubmd.train({"model": {"cutoff": 5.0, "n_radial": 6, "n_basis": 8, "hidden": [32, 32]},
                "training": {"max_epochs": 60, "batch_size": 8, "lr": 0.01, "dtype": "float32",
                             "progress": False},
                "uncertainty": {"kind": "posterior", "features": "last_layer"},
                "data": {"valid_fraction": 0.2}}, frames=frames, output=out)
    return out / "model.pt", frames[0]


def _walk(model, start, tmp_path, engine, tau, seed, steps=1500):
    import ubmd

    run = ubmd.run_md(model, start, tmp_path / f"{engine}_{tau}_{seed}", engine=engine,
                      seed=seed, temperature=TARGET, tau_forces=tau, window=100,
                      weights={"H": 0.0}, max_steps=steps, log_every=1, sample_every=steps,
                      threshold=1e6)  # only the guard may stop it
    s = run.summary
    assert s["stop_reason"] in ("runaway", "max_steps"), s
    t_max = max(float(np.max(run.trace["temperature"])), float(s["max_temperature_K"]))
    return s, t_max, run


@pytest.mark.slow
@requires_plugin
@pytest.mark.parametrize("tau", [2.0, 0.25])
def test_biased_lammps_walkers_stop_below_twice_the_target(coarse_model, tmp_path, tau):
    """Ten seeds: the guard (1.8 x 600 K for 22 atoms) stops every walker before it is twice as
    hot as its target; at tau_F = 2 every one of them is a runaway, whose frame is the trigger."""
    model, start = coarse_model
    peaks, reasons = [], []
    for seed in range(10):
        s, t_max, run = _walk(model, start, tmp_path, "lammps", tau, seed)
        peaks.append(t_max / TARGET)
        reasons.append(s["stop_reason"])
        assert s["runaway_temperature_K"] == pytest.approx(1081.0, abs=1.0)
        if s["stop_reason"] == "runaway":
            last = run.candidates[-1]
            assert last.info["runaway"] and last.info["trigger"]
            assert last.info["temperature"] > s["runaway_temperature_K"]
    assert max(peaks) < 2.0, peaks
    if tau == 2.0:
        assert reasons == ["runaway"] * 10, reasons


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_biased_ase_walkers_stop_below_twice_the_target(coarse_model, tmp_path, seed):
    model, start = coarse_model
    s, t_max, run = _walk(model, start, tmp_path, "ase", 2.0, seed, steps=600)
    assert s["stop_reason"] == "runaway" and t_max / TARGET < 2.0, (s, t_max)
    assert run.candidates[-1].info["runaway"]
