"""Config building of benchmarks/ala2_campaigns.py (the branch size) and the shared LAMMPS-log
parser. Fast: a synthetic parent campaign directory, no labels, no LAMMPS."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ase import Atoms
from ase.io import read, write

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ala2_campaigns as ac  # noqa: E402
import campaign_common as cc  # noqa: E402


def _parent(tmp_path: Path, r: int = 3, n_new: int = 5) -> Path:
    parent = tmp_path / "parent"
    for k in range(r + 1):
        d = parent / f"round_{k:03d}"
        d.mkdir(parents=True)
        write(d / "dataset.extxyz", [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * i]])
                                     for i in range(4 * (k + 1))])
        write(d / "labelled.extxyz", [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.8]])] * n_new)
        (d / "summary.json").write_text(json.dumps({"round": k, "n_new_labels": n_new,
                                                    "n_dataset": 4 * (k + 1)}))
    return parent


def test_branch_settings_point_round0_at_the_parent(tmp_path):
    parent = _parent(tmp_path)
    s = ac.branch_settings(parent, 3, 40)
    # the budget counts the labels the branch makes: the relabelled round-3 structures + 40
    assert s["label_budget"] == 5 + 40
    assert s["initial"]["n_perturbed"] == 0
    assert Path(s["initial"]["structures"]) == (parent / "round_003" / "labelled.extxyz").resolve()
    assert Path(s["initial"]["data"]) == (parent / "round_002" / "dataset.extxyz").resolve()


def test_branch_config_merges_campaign_and_branch(tmp_path, monkeypatch):
    parent = _parent(tmp_path)
    monkeypatch.setitem(ac.BRANCH, "parent", parent)
    monkeypatch.setitem(ac.BRANCH, "round", 2)
    monkeypatch.setitem(ac.BRANCH, "labels", 16)
    cfg = ac.campaign_config("biased_300K_ensemble", "branch", seed=1)
    assert cfg["label_budget"] == 5 + 16
    assert cfg["uncertainty"]["kind"] == "ensemble" and cfg["training"]["n_models"] == 3
    assert cfg["initial"]["data"].endswith("round_001/dataset.extxyz")
    # full-size walker and training settings, the seed applied everywhere
    assert cfg["walkers"]["max_steps"] == ac.SIZES["full"]["walkers.max_steps"]
    assert cfg["training"]["max_time_s"] == ac.SIZES["full"]["training.max_time_s"]
    assert cfg["walkers"]["seed"] == 100_000 and cfg["selection"]["seed"] == 1


def test_branch_settings_refuse_missing_rounds(tmp_path):
    parent = _parent(tmp_path, r=1)
    with pytest.raises(SystemExit, match="round 2 has finished"):
        ac.branch_settings(parent, 2, 8)
    with pytest.raises(SystemExit, match=">= 1"):
        ac.branch_settings(parent, 0, 8)


def test_lammps_loop_time_picks_the_requested_run(tmp_path):
    log = tmp_path / "log.lammps"
    log.write_text("Step Temp\n"
                   "Loop time of 0.5 on 1 procs for 100 steps with 22 atoms\n"
                   "more\n"
                   "Loop time of 4.25 on 1 procs for 1000 steps with 22 atoms\n")
    assert cc.lammps_loop_time(log) == (0.5, 100)
    assert cc.lammps_loop_time(log, which=-1) == (4.25, 1000)
    assert cc.lammps_loop_time(log, which=5) is None
    assert cc.lammps_loop_time(tmp_path / "missing.log") is None


def test_branch_settings_refuse_no_new_labels(tmp_path):
    with pytest.raises(SystemExit, match="branch-labels"):
        ac.branch_settings(_parent(tmp_path), 2, 0)


def test_branch_dir_from_other_settings_is_refused(tmp_path):
    import yaml

    parent = _parent(tmp_path)
    cfg = {"initial": ac.branch_settings(parent, 3, 40)["initial"], "label_budget": 45}
    out = tmp_path / "branch" / "biased_300K_s0"
    ac.check_branch_dir(out, cfg)  # nothing there yet
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    ac.check_branch_dir(out, cfg)  # the same settings: fine
    other = {"initial": ac.branch_settings(parent, 2, 40)["initial"], "label_budget": 45}
    with pytest.raises(SystemExit, match="branched from"):
        ac.check_branch_dir(out, other)
    with pytest.raises(SystemExit, match="label_budget"):
        ac.check_branch_dir(out, {**cfg, "label_budget": 29})


def test_lammps_cost_skips_campaigns_without_lammps_walkers(tmp_path):
    parent = _parent(tmp_path)  # rounds with summaries but no walker decks
    res = ac.lammps_cost({"x": parent}, tmp_path / "runs", steps=10, repeats=1)
    assert res.get("ms_per_step", {}) == {} or "error" in res


def test_branch_from_an_archive_matches_the_campaign_directory(tmp_path, monkeypatch):
    """An archived campaign (write_archive) branches like its directory did: the same round r-1
    data set, the same round-r structures, the same label budget."""
    parent = _parent(tmp_path, r=3, n_new=4)  # round k: 4 (k + 1) frames, +4 per round
    for k in range(4):  # the archive needs labels_used
        summ = parent / f"round_{k:03d}" / "summary.json"
        summ.write_text(json.dumps({**json.loads(summ.read_text()), "labels_used": 4 * (k + 1)}))
    (parent / "config.yaml").write_text("label_budget: 16\n")
    for k in range(1, 4):  # labelled.extxyz of the synthetic parent = the frames its round added
        frames = read(parent / f"round_{k:03d}" / "dataset.extxyz", ":")[4 * k:]
        write(parent / f"round_{k:03d}" / "labelled.extxyz", frames)
    arch = tmp_path / "archive" / "ala2_campaigns_full" / "x_s0"
    cc.write_archive(parent, arch, {})
    monkeypatch.setattr(ac, "ROOT", tmp_path)
    from_dir = ac.branch_settings(parent, 2, 10)
    from_arch = ac.branch_settings(arch, 2, 10)
    assert from_arch["label_budget"] == from_dir["label_budget"] == 4 + 10
    for key in ("structures", "data"):
        a, b = read(from_dir["initial"][key], ":"), read(from_arch["initial"][key], ":")
        assert len(a) == len(b) and all((x.positions == y.positions).all() for x, y in zip(a, b))
    assert Path(from_arch["initial"]["data"]).is_relative_to(tmp_path / "runs" / "unpacked")
    with pytest.raises(SystemExit, match="no rounds"):
        ac.branch_settings(arch, 5, 10)
