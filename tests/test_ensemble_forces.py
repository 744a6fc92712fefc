"""Force-variance ensemble uncertainty against member forces computed independently."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import random_model, small_molecule
from ubmd.calculator import UBMDCalculator
from ubmd.uncertainty.ensemble_forces import force_variance_uncertainty
from ubmd.model_file.export import ExportedModel
from ubmd.uncertainty.features import FeatureModel


def test_force_variance_matches_independent_member_forces():
    members = [random_model(seed=s) for s in (1, 2, 3)]
    atoms = small_molecule()
    forces = []
    for m in members:  # each member alone through the ASE calculator
        a = atoms.copy()
        a.calc = UBMDCalculator(ExportedModel(FeatureModel([m]), None))
        forces.append(a.get_forces())
    f = np.stack(forces)
    mean = f.mean(0)
    ref_at = np.sqrt(((f - mean) ** 2).sum(-1).mean(0) / 3)
    u, u_at = force_variance_uncertainty(members, atoms, calib_total=2.0, calib_atomic=3.0)
    assert np.allclose(u_at, 3.0 * ref_at, rtol=1e-10)
    assert abs(u - 2.0 * np.sqrt((ref_at ** 2).mean())) < 1e-12 * u
    same, same_at = force_variance_uncertainty([members[0], members[0]], atoms)
    assert same == 0.0 and np.all(same_at == 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        force_variance_uncertainty(members[:1], atoms)
