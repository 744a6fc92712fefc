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
