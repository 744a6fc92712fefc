"""The campaign archive of the benchmark drivers (benchmarks/campaign_common.py): results of
other seeds survive a partial re-analysis, and what the figures and retrain_datasets.py need of a
campaign directory is kept after runs/ is gone. Fast: synthetic campaign directories."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import campaign_common as cc  # noqa: E402
import mil53_campaigns as mc  # noqa: E402
import retrain_datasets as rd  # noqa: E402


def _campaign(tmp_path: Path, n_rounds: int = 3, per_round: int = 4) -> Path:
    out = tmp_path / "runs" / "full" / "c_s0"
    frames = [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * i]], cell=[5, 5, 5 + i], pbc=True)
              for i in range(per_round * n_rounds)]
    for r in range(n_rounds):
        d = out / f"round_{r:03d}"
        d.mkdir(parents=True)
        n = per_round * (r + 1)
        write(d / "dataset.extxyz", frames[:n])
        (d / "summary.json").write_text(json.dumps({"round": r, "n_dataset": n, "labels_used": n}))
    (out / "config.yaml").write_text("label_budget: 12\n")
    return out


def test_merged_campaigns_keeps_other_seeds_and_campaigns(tmp_path):
    path = tmp_path / "res.json"
    path.write_text(json.dumps({"campaigns": {"a": {"0": {"x": 1}, "1": {"x": 2}}, "b": {"0": {"x": 3}}}}))
    old, merged = cc.merged_campaigns(path, {"a": {"1": {"x": 20}, "2": {"x": 30}}})
    assert merged == {"a": {"0": {"x": 1}, "1": {"x": 20}, "2": {"x": 30}}, "b": {"0": {"x": 3}}}
    assert old["campaigns"]["a"]["1"] == {"x": 2}  # the previous record is not modified


def test_traces_round_trip(tmp_path):
    traces = {0: {0: np.array([[1.0, 2.0]]), 3: np.zeros((0, 2))}, 11: {1: np.arange(6.0).reshape(3, 2)}}
    cc.save_traces(tmp_path / "t.npz", traces)
    back = cc.load_traces(tmp_path / "t.npz")
    assert list(back) == [0, 11] and list(back[0]) == [0, 3]
    for r, ws in traces.items():
        for w, a in ws.items():
            np.testing.assert_array_equal(back[r][w], a)


def test_archive_replaces_the_campaign_directory(tmp_path):
    out = _campaign(tmp_path)
    arch = tmp_path / "archive" / "c_s0"
    vols = {0: {0: np.array([1500.0, 1490.0])}, 2: {1: np.array([800.0])}}
    cc.write_archive(out, arch, vols)
    read_run = lambda o, rounds: {r["round"]: {0: np.array([float(r["round"])])} for r in rounds}  # noqa: E731
    assert list(cc.archived_traces(out, arch, read_run)) == [0, 1, 2]  # run dir first
    full = cc.archived_dataset(arch)
    assert len(full) == 12 and len(cc.archived_dataset(arch, 8)) == 8
    np.testing.assert_allclose(full[5].positions, [[0, 0, 0], [0, 0, 0.75]])
    np.testing.assert_allclose(full[5].cell.lengths(), [5, 5, 10])
    shutil.rmtree(out)
    assert {r: w[0].tolist() if 0 in w else w[1].tolist() for r, w in
            cc.archived_traces(out, arch, read_run).items()} == {0: [1500.0, 1490.0], 2: [800.0]}
    assert cc.archived_traces(out, tmp_path / "nowhere", read_run) == {}
    # retrain_datasets takes the archive as a campaign: round sizes, the largest round <= labels
    rounds = rd.campaign_rounds(arch)
    assert [s["n_dataset"] for s in rounds] == [4, 8, 12]
    assert rd.pick_round(arch, 10)["round"] == 1


def test_mil53_volumes_from_the_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "ATOMS_PER_FU", 2)  # H2 frames: one "unit" each
    out = _campaign(tmp_path)
    runs = tmp_path / "runs"
    arch = cc.archive_dir("mil53_campaigns", "tiny", "c", 0, runs)
    assert arch.is_relative_to(runs)  # tiny archives stay out of the repository
    assert cc.archive_dir("mil53_campaigns", "full", "c", 0, runs).is_relative_to(cc.ARCHIVE)
    cc.write_archive(out, arch, {1: {0: np.array([1400.0, 1410.0])}})
    shutil.rmtree(out)
    np.testing.assert_allclose(mc.campaign_volumes("c", "full", 0, runs, 152), [])  # not tiny's archive
    np.testing.assert_allclose(mc.campaign_volumes("c", "tiny", 0, runs, 152), [1400.0, 1410.0])
    dv = mc.dataset_volumes("c", "tiny", 0, runs)  # from the archived data set
    np.testing.assert_allclose(dv, [25.0 * (5 + i) for i in range(12)])
