"""UBMDCalculator as ASE means a calculator: parameters, set(), reset(), get_property, and the
bias through ubmd.bias.Bias (the windows, the same rule as the LAMMPS pair style)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import small_molecule
from test_uncertainty import _biased_calc
from ubmd.calculator import UBMDCalculator


def _forces(calc, atoms):
    atoms.calc = calc
    return atoms.get_forces().copy()


def test_set_changes_the_bias_and_clears_results():
    em, calc = _biased_calc(tau_f=0.0)
    atoms = small_molecule()
    f_plain = _forces(calc, atoms)
    assert calc.results["bias_scale_forces"] == 0.0 and not calc.bias.active()
    changed = calc.set(tau_forces=0.3)
    assert changed == {"tau_forces": 0.3} and calc.parameters["tau_forces"] == 0.3
    assert calc.results == {}  # ASE: a changed parameter invalidates the results
    f_biased = _forces(calc, atoms)
    assert calc.results["bias_scale_forces"] > 0 and calc.tau_forces == 0.3
    assert not np.allclose(f_plain, f_biased)
    # the same as a calculator built with tau_forces=0.3 from the start (window 1)
    _, fresh = _biased_calc(tau_f=0.3)
    np.testing.assert_allclose(_forces(fresh, small_molecule()), f_biased, rtol=1e-12)


def test_set_keeps_the_window_and_reset_starts_a_new_trajectory():
    em, _ = _biased_calc()
    calc = UBMDCalculator(em, tau_forces=0.3, window=3)
    atoms = small_molecule()
    for k in range(3):
        atoms.positions[0, 0] += 0.01
        _forces(calc, atoms)
    assert calc.results["bias_scale_forces"] > 0  # the window is full
    calc.set(tau_forces=0.5)  # a setting, not a new trajectory
    atoms.positions[0, 0] += 0.01
    _forces(calc, atoms)
    assert calc.results["bias_scale_forces"] > 0
    calc.reset()  # a new trajectory: the bias is off for `window` evaluations
    assert calc.results == {}
    atoms.positions[0, 0] += 0.01
    _forces(calc, atoms)
    assert calc.results["bias_scale_forces"] == 0.0
    np.testing.assert_allclose(calc.results["bias_forces"], 0.0)


def test_uncertainty_modes_and_their_errors():
    em, _ = _biased_calc()
    assert UBMDCalculator(em, uncertainty="total").uncertainty == "both"  # the older name
    atomic = UBMDCalculator(em, uncertainty="atomic")
    assert atomic.uncertainty == "atomic"
    with pytest.raises(ValueError, match="uncertainty must be one of both, atomic, none"):
        UBMDCalculator(em, uncertainty="global")
    with pytest.raises(ValueError, match="needs uncertainty='both'"):
        atomic.set(tau_forces=0.2)
    with pytest.raises(ValueError, match="element S is not in the model"):
        UBMDCalculator(em).set(weights={"S": 0.0})
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        UBMDCalculator(em, weights={"Xx": 0.0})
    with pytest.raises(ValueError, match="tau_forces must be >= 0"):
        UBMDCalculator(em, tau_forces=-1.0)


def test_uncertainty_results_through_get_property():
    em, calc = _biased_calc()
    atoms = small_molecule()
    atoms.calc = calc
    u = calc.get_property("uncertainty", atoms)
    assert u > 0 and calc.get_property("atomic_uncertainty", atoms).shape == (len(atoms),)
    plain = UBMDCalculator(em, uncertainty="none")
    assert "uncertainty" not in plain.implemented_properties
    assert "uncertainty" not in UBMDCalculator.implemented_properties  # class list untouched


def test_a_refused_set_changes_nothing():
    """A bad value raises and leaves parameters, bias and results as they were; setters on
    tau_forces / tau_stress go through set()."""
    em, calc = _biased_calc(tau_f=0.3)
    atoms = small_molecule()
    f = _forces(calc, atoms)
    before = dict(calc.parameters)
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        calc.set(weights={"Xx": 0.0})
    with pytest.raises(ValueError, match="needs uncertainty='both'"):
        calc.set(tau_forces=0.5, uncertainty="atomic")
    assert calc.parameters == before and calc.bias.tau_forces == 0.3
    assert calc.set(tau_forces=0.3) == {} and calc.results  # nothing changed: results kept
    np.testing.assert_allclose(atoms.get_forces(), f)
    calc.tau_forces = 0.0
    assert calc.parameters["tau_forces"] == 0.0 and not calc.bias.active()


# ------------------------------------------------------------------ ASE conventions (issue #26)
@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """The exported model file of the biased test calculator (H, C, O)."""
    from ubmd.model_file import export_model

    em, _ = _biased_calc()
    path = tmp_path_factory.mktemp("calc_model") / "model.pt"
    export_model(em, path)
    return path


def test_todict_rebuilds_the_calculator(model_path):
    calc = UBMDCalculator(model_path, tau_forces=0.3, window=7, weights={"H": 0.0})
    d = calc.todict()
    assert d == {"model": str(model_path.resolve()), "tau_forces": 0.3, "window": 7,
                 "weights": {"H": 0.0}}
    assert UBMDCalculator(**d).todict() == d
    full = calc.todict(skip_default=False)
    assert full["device"] == "cpu" and full["tau_stress"] == 0.0 and full["uncertainty"] == "both"
    em, in_memory = _biased_calc()
    assert in_memory.todict()["model"] is None


def test_pickle_reloads_the_model_file_and_keeps_the_trajectory(model_path):
    """A pickled calculator is small (the model file is loaded again from its path) and goes on
    where it was: same parameters, same bias windows, same results on the next step."""
    import pickle

    calc = UBMDCalculator(model_path, tau_forces=0.3, window=3)
    atoms = small_molecule()
    for _ in range(4):
        atoms.positions[0, 0] += 0.01
        _forces(calc, atoms)
    blob = pickle.dumps(calc)
    assert len(blob) < 20_000
    copy = pickle.loads(blob)
    assert copy.todict() == calc.todict() and copy.model_path == calc.model_path
    atoms.positions[0, 0] += 0.01
    a2 = atoms.copy()
    np.testing.assert_allclose(_forces(copy, a2), _forces(calc, atoms), rtol=1e-12)
    assert copy.results["bias_scale_forces"] == pytest.approx(calc.results["bias_scale_forces"], rel=1e-12)
    assert calc.results["bias_scale_forces"] > 0  # (a fresh TorchScript module may differ in the last bit)
    # an in-memory model pickles with the rest
    em, mem = _biased_calc()
    assert pickle.loads(pickle.dumps(mem)).tau_forces == mem.tau_forces


def test_optimiser_with_a_bias_is_refused_md_is_not(model_path):
    """ASE optimisers minimise what the calculator gives: with the bias on, E - tau u. As
    pair_style ubmd refuses minimize with a bias, the calculator refuses an optimiser (MD,
    which runs through ASE's Dynamics base class too, is fine); without the bias it optimises."""
    from ase import units
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import BFGS, FIRE

    atoms = small_molecule()
    atoms.calc = UBMDCalculator(model_path, tau_forces=0.3, window=1)
    VelocityVerlet(atoms, 0.5 * units.fs).run(3)
    for opt in (BFGS, FIRE):
        atoms.calc.reset()
        with pytest.raises(ValueError, match=rf"ASE optimiser \({opt.__name__}\) runs with the "
                                             "uncertainty bias on.*calc.set\\(tau_forces=0"):
            opt(atoms, logfile=None).run(fmax=0.05, steps=2)
    atoms.calc.set(tau_forces=0.0)
    assert BFGS(atoms, logfile=None).run(fmax=1e3, steps=2) in (True, None)


def test_cuda_on_a_cpu_torch_says_so(model_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch has CUDA")
    with pytest.raises(Exception, match="(?i)cuda"):
        UBMDCalculator(model_path, device="cuda")
