"""Fast checks of the MIL-53(Al) walker-breathing measurement and of the 300 K test-set builder
(issue #24): synthetic traces with known answers, the cp -> lp path at a given volume. No LAMMPS,
no reference calculations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from benchmarks.mil53.make_test_set import vpfu
from benchmarks.mil53.make_test_set_300K import interpolated_at_volume, state_of_volume
from benchmarks.mil53.walker_breathing import aggregate, state_of, table, walker_metrics

DATA = Path(__file__).resolve().parents[1] / "examples" / "mil53" / "data"


def _trace(v_per_fu, u, dt_fs=5.0, n_atoms=152):
    n = len(v_per_fu)
    return {"time_fs": np.arange(n) * dt_fs, "volume": np.asarray(v_per_fu) * n_atoms / 76,
            "max_atomic_uncertainty": np.asarray(u, float), "temperature": np.full(n, 300.0)}


def test_state_bounds():
    assert state_of(np.array([700.0, 1149.0, 1151.0, 1349.0, 1351.0, 1699.0, 1701.0])).tolist() == \
        [0, 0, 1, 1, 2, 2, 3]


def test_walker_metrics_known_answers():
    # volume falls linearly from 1500 to 1000 A^3 per unit over 101 records of 5 fs; u rises
    v = np.linspace(1500.0, 1000.0, 101)
    u = np.linspace(0.5, 6.0, 101)
    m = walker_metrics(_trace(v, u), 152, [1.5, 5.0])
    assert m["volume_per_fu_min"] == pytest.approx(1000.0)
    assert m["volume_per_fu_max"] == pytest.approx(1500.0)
    k_inter = np.flatnonzero(v < 1350.0)[0]
    k_closed = np.flatnonzero(v < 1150.0)[0]
    assert m["first_ps"]["below_large"] == pytest.approx(k_inter * 5e-3)
    assert m["first_ps"]["intermediate"] == pytest.approx(k_inter * 5e-3)
    assert m["first_ps"]["closed"] == pytest.approx(k_closed * 5e-3)
    assert m["first_ps"]["expanded"] is None
    assert sum(m["fraction"].values()) == pytest.approx(1.0)
    k15 = np.flatnonzero(u > 1.5)[0]
    k5 = np.flatnonzero(u > 5.0)[0]
    c15, c5 = m["crossings"]["1.5"], m["crossings"]["5"]
    assert c15["first_ps"] == pytest.approx(k15 * 5e-3)
    assert c15["volume_per_fu_before"] == pytest.approx([v[k15 - 1], 1500.0])
    # the 1.5 eV/A crossing comes before the volume leaves the large-pore state, 5 after
    assert k15 < k_inter < k5
    assert not c15["left_large_before"] and c5["left_large_before"]
    assert m["max_u_max"] == pytest.approx(6.0)


def test_walker_metrics_never_crossing():
    m = walker_metrics(_trace(np.full(50, 1480.0), np.full(50, 0.3)), 152, [1.5])
    assert m["crossings"]["1.5"]["first_ps"] is None
    assert m["first_ps"] == {"closed": None, "intermediate": None, "expanded": None,
                             "below_large": None}
    assert m["fraction"]["large"] == 1.0


def test_aggregate_and_table():
    runs = []
    for seed, vmin in enumerate((1300.0, 1450.0)):
        v = np.linspace(1490.0, vmin, 40)
        r = {"sampler": "bias_forces_stress", "pressure": 2500.0, "pdamp": 1000.0, "seed": seed,
             "stop_reason": "max_steps"}
        r.update(walker_metrics(_trace(v, np.linspace(0.2, 2.0, 40)), 152, [1.5]))
        runs.append(r)
    rows = aggregate(runs, [1.5])
    assert len(rows) == 1 and rows[0]["n"] == 2 and rows[0]["left_large"] == 1
    md = table(rows, [1.5])
    assert "bias_forces_stress | +2500 | 1000 | 2 |" in md and "1/2" in md


def test_intermediate_cell_on_the_cp_lp_path():
    lp = read(DATA / "mil53_lp_gfn1_2x1x1.extxyz")
    cp = read(DATA / "mil53_np_gfn1_2x1x1.extxyz")
    for target in (1200.0, 1300.0):
        a = interpolated_at_volume(cp, lp, target)
        assert vpfu(a) == pytest.approx(target, rel=1e-9)
        assert 0.0 < a.info["lam"] < 1.0
        assert (a.numbers == lp.numbers).all()
        # no two atoms on top of each other along the path
        d = a.get_all_distances(mic=True)[np.triu_indices(len(a), 1)]
        assert d.min() > 0.7
    with pytest.raises(ValueError, match="outside the cp-lp path"):
        interpolated_at_volume(cp, lp, 2000.0)


def test_test_frames_are_assigned_a_state_by_volume():
    assert [state_of_volume(v) for v in (747.0, 1149.9, 1150.0, 1349.9, 1350.0, 1486.0, 1750.0)] \
        == ["closed", "closed", "intermediate", "intermediate", "large", "large", "large"]


def test_walker_breathing_sampler_names():
    from benchmarks.mil53.walker_breathing import SAMPLERS, sampler_taus

    assert sampler_taus("bias_forces_stress") == SAMPLERS["bias_forces_stress"] == (0.25, 0.25)
    assert sampler_taus("f0.05s0.25") == (0.05, 0.25)
    assert sampler_taus("f0s0.1") == (0.0, 0.1)
    assert sampler_taus("f.1s1") == (0.1, 1.0)
    for bad in ("f0.05", "bias", "f-1s0", "s0.2f0.1", "f0..5s0.25", "f.s0"):
        with pytest.raises(ValueError, match="f<tau_F>s<tau_sigma>"):
            sampler_taus(bad)
