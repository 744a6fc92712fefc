"""End-to-end smoke run of a paper benchmark driver on a clean checkout: the alanine-dipeptide
campaign script at its ``tiny`` size (one biased 300 K campaign: GFN2-xTB labels through tblite,
LAMMPS walkers with ``pair_style ubmd``, training, selection, then the measurements: coverage
from the traces and from ``ubmd analyze coverage``, test errors checked against the model file).
About a minute on 2 cores; the quick and full sizes are not run here (docs/benchmarks.md)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lammps_helpers import requires_plugin

ROOT = Path(__file__).resolve().parents[1]
SHARED_ALA2 = ROOT.parent / "shared" / "data" / "ala2"

pytestmark = [
    requires_plugin,
    pytest.mark.skipif(not (SHARED_ALA2 / "ala2_relaxed.xyz").exists(),
                       reason="needs ../shared/data/ala2 (the start structure)"),
]


def test_ala2_campaign_driver_tiny(tmp_path):
    pytest.importorskip("tblite")
    results = tmp_path / "ala2_tiny.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ala2_campaigns.py"), "--size", "tiny",
         "--campaigns", "biased_300K", "--runs", str(tmp_path / "runs"), "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    d = json.loads(results.read_text())
    assert d["errors"] == {}
    c = d["campaigns"]["biased_300K"]["0"]
    assert c["finished"] and c["engine"] == "lammps"
    assert c["labels_used"] == d["size_preset"]["label_budget"] == 16
    assert c["n_dataset"] == 16

    cov = c["coverage"]
    levels = cov["final_per_level"]
    assert len(levels) == 5 and all(0.0 < f <= 1.0 for f in levels)
    assert cov["final"] == pytest.approx(sum(levels) / 5, rel=1e-12)
    # a visited 2^k cell means at least one visited 2^(k+1) cell inside it: fractions fall by at
    # most a factor 4 from one level to the next
    assert all(b >= a / 4 - 1e-12 for a, b in zip(levels, levels[1:]))
    assert cov["n_md_frames"] >= 4  # at least the walkers' start frames
    # the driver's coverage (trace.npz) and the CLI's (trace.lammpstrj) agree exactly
    assert cov["cli"]["coverage"] == pytest.approx(cov["final"], abs=1e-15)
    assert cov["cli"]["n_points"] == cov["n_md_frames"]

    for t in ("300K", "600K", "1200K"):
        e = c["test_errors_final"][t]
        assert all(math.isfinite(e[k]) and e[k] > 0 for k in
                   ("energy_rmse_meV_atom", "forces_rmse", "forces_max"))
        assert e["forces_max"] >= e["forces_rmse"]
        chk = e["check_model_file"]  # batched float64 members vs the exported float32 model file
        assert chk["forces_rmse_batched"] == pytest.approx(chk["forces_rmse_model_file"], rel=1e-4)
        assert chk["energy_rmse_batched"] == pytest.approx(chk["energy_rmse_model_file"], rel=1e-3)
    assert all(k in c["stage_totals_s"] for k in ("reference", "training", "sampling", "selection"))
    # tiny writes its figures under the runs directory, never into docs/
    assert d["figures"] and all(str(tmp_path) in p and Path(p).exists() for p in d["figures"])
