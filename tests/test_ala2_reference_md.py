"""benchmarks/ala2_reference_md.py: resumed walkers equal uninterrupted ones; coverage bookkeeping."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

pytest.importorskip("tblite")
import ala2_reference_md as ref  # noqa: E402


@pytest.mark.skipif(not (ref.DATA_DIR / "dihedrals.json").is_file(), reason="ala2 data not available")
def test_resumed_walker_equals_uninterrupted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    full = ref.run_walker(1200.0, 0, 60, 20, 3, str(a))
    ref.run_walker(1200.0, 0, 20, 20, 3, str(b))  # "interrupted" after one chunk
    part = ref.load_walker(ref.walker_path(b, 1200.0, 0))
    assert int(part["steps"]) == 20 and len(part["cvs"]) == 2
    resumed = ref.run_walker(1200.0, 0, 60, 20, 3, str(b))
    za, zb = (ref.load_walker(ref.walker_path(d, 1200.0, 0)) for d in (a, b))
    assert full["steps"] == resumed["steps"] == 60
    assert len(za["cvs"]) == 6  # every 10 steps, step 0 not traced
    np.testing.assert_allclose(za["positions"], zb["positions"], atol=1e-8)
    np.testing.assert_allclose(za["cvs"], zb["cvs"], atol=1e-6)
    # another seed gives another trajectory (the seed reaches the dynamics)
    c = tmp_path / "c"
    c.mkdir()
    ref.run_walker(1200.0, 0, 20, 20, 4, str(c))
    zc = ref.load_walker(ref.walker_path(c, 1200.0, 0))
    assert np.abs(zc["cvs"] - za["cvs"][:2]).max() > 1e-4


def test_coverage_vs_steps_counts_walkers_in_parallel():
    # walker 0 stays in one 32x32 cell, walker 1 visits the four 2x2 quadrants one after another
    w0 = np.full((4, 2), -170.0)
    w1 = np.array([[-90.0, -90.0], [90.0, -90.0], [-90.0, 90.0], [90.0, 90.0]])
    rows = ref.coverage_vs_steps([w0, w1], n_points=10)
    assert [r["md_steps"] for r in rows] == [20, 40, 60, 80]
    # after k frames each: 2x2 level sees k quadrants (w0's cell is in the (-,-) quadrant, as w1's first)
    assert [r["fraction_per_level"][0] for r in rows] == [0.25, 0.5, 0.75, 1.0]


def test_campaign_curves_accumulate_md_steps(tmp_path):
    rounds = [{"walker_steps": [10, 20], "coverage_cumulative": 0.1},
              {"walker_steps": None, "coverage_cumulative": None},  # last round: no walkers
              {"walker_steps": [5, 5], "coverage_cumulative": 0.2}]
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"campaigns": {"biased_300K": {"0": {"rounds": rounds}}}}))
    curves = ref.campaign_curves(path)
    assert curves == {"biased_300K": {"0": [(30, 0.1), (40, 0.2)]}}
    assert ref.value_at(curves["biased_300K"]["0"], 35) == {"md_steps": 30, "coverage": 0.1}
    assert ref.value_at(curves["biased_300K"]["0"], 29) is None
