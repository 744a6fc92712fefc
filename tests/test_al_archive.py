"""A campaign directory read back and its archive (ubmd.al.archive), and branching a campaign from
one of its rounds (ubmd.al.branch). Fast: synthetic campaign directories, no labels, no MD."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.io import read, write

from conftest import synthetic_campaign
from ubmd.al.archive import (archived_dataset, archived_traces, campaign_dataset,
                             campaign_finished, is_archive, load_rounds, load_traces, pick_round,
                             read_rounds, save_traces, walker_md_costs, walker_traces,
                             write_archive)
from ubmd.al.branch import branch_settings, check_branch_dir
from ubmd.analysis import state_summary, volume_per_fu


def _campaign(tmp_path: Path, n_rounds: int = 3, per_round: int = 4) -> Path:
    """Rounds 0..n-1 with data sets of per_round (r + 1) H2 frames in growing cells."""
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


def _parent(tmp_path: Path, r: int = 3, n_new: int = 5) -> Path:
    """A campaign whose round k has 4 (k + 1) frames and n_new relabelled structures."""
    return synthetic_campaign(tmp_path / "parent", r + 1, n_new)


def _traced_campaign(tmp_path: Path, volumes_by_round: dict, n_fu: int = 2) -> Path:
    out = tmp_path / "camp"
    for r, walkers in volumes_by_round.items():
        rd = out / f"round_{r:03d}"
        for w, vols in enumerate(walkers):
            wd = rd / "walkers" / f"w{w:02d}"
            wd.mkdir(parents=True)
            np.savez(wd / "trace.npz", step=np.arange(len(vols)) * 10.0,
                     volume=np.asarray(vols, dtype=float) * n_fu)
        (rd / "summary.json").write_text(json.dumps({"round": r, "labels_used": 8 * (r + 1)}))
    return out


# ------------------------------------------------------------------------ campaign directory
def test_walker_traces_from_trace_npz(tmp_path):
    out = _traced_campaign(tmp_path, {0: [[1490.0, 1480.0], [1500.0]], 1: [[1200.0, 760.0, 750.0]]})
    rounds = load_rounds(out)
    assert [s["round"] for s in rounds] == [0, 1]
    assert not campaign_finished(out)
    v = walker_traces(out, "volume")
    assert sorted(v) == [0, 1] and sorted(v[0]) == [0, 1]
    assert (v[0][0] / 2).tolist() == [1490.0, 1480.0]
    allv = np.concatenate([x for ws in v.values() for x in ws.values()]) / 2
    s = state_summary(allv, [1150.0, 1350.0, np.nextafter(1700.0, np.inf)],
                      ("closed", "intermediate", "large", "expanded"))
    assert s["counts"] == {"closed": 2, "intermediate": 1, "large": 3, "expanded": 0}
    assert walker_traces(out, "cvs") == {}  # no such array: no rounds


def test_walker_traces_fall_back_to_the_lammps_log(tmp_path):
    out = _traced_campaign(tmp_path, {0: [[1490.0]]})
    wd = out / "round_000" / "walkers" / "w00"
    np.savez(wd / "trace.npz", step=np.zeros(1), volume=np.full(1, np.nan))  # no finite volume
    (wd / "log.lammps").write_text(
        "run 10\nPer MPI rank memory allocation (min/avg/max) = 3 | 3 | 3 Mbytes\n"
        "   Step          Temp          Volume\n         0   300            2980.0\n"
        "        10   310            2990.0\n"
        "Loop time of 1.5 on 1 procs for 10 steps with 152 atoms\n")
    assert walker_traces(out, "volume") == {}
    assert walker_traces(out, "volume", log_column="Volume")[0][0].tolist() == [2980.0, 2990.0]
    costs = walker_md_costs(out, [{"round": 0, "walkers": [{"wall_s": 3.0}]}], md_steps=10)
    assert costs == {"md_walker_wall_s": 3.0, "md_wall_ms_per_step": 300.0,
                     "md_loop_ms_per_step": 150.0}


# ------------------------------------------------------------------------ archive
def test_traces_round_trip(tmp_path):
    traces = {0: {0: np.array([[1.0, 2.0]]), 3: np.zeros((0, 2))}, 11: {1: np.arange(6.0).reshape(3, 2)}}
    save_traces(tmp_path / "t.npz", traces)
    back = load_traces(tmp_path / "t.npz")
    assert list(back) == [0, 11] and list(back[0]) == [0, 3]
    for r, ws in traces.items():
        for w, a in ws.items():
            np.testing.assert_array_equal(back[r][w], a)


def test_archive_replaces_the_campaign_directory(tmp_path):
    out = _campaign(tmp_path)
    arch = tmp_path / "archive" / "c_s0"
    vols = {0: {0: np.array([1500.0, 1490.0])}, 2: {1: np.array([800.0])}}
    write_archive(out, arch, vols)
    assert is_archive(arch) and not is_archive(out)
    read_run = lambda o, rounds: {r["round"]: {0: np.array([float(r["round"])])} for r in rounds}  # noqa: E731
    assert list(archived_traces(out, arch, read_run)) == [0, 1, 2]  # run dir first
    full = archived_dataset(arch)
    assert len(full) == 12 and len(archived_dataset(arch, 8)) == 8
    np.testing.assert_allclose(full[5].positions, [[0, 0, 0], [0, 0, 0.75]])
    np.testing.assert_allclose(full[5].cell.lengths(), [5, 5, 10])
    assert len(campaign_dataset(out, arch)) == 12  # from the directory
    shutil.rmtree(out)
    assert {r: w[0].tolist() if 0 in w else w[1].tolist() for r, w in
            archived_traces(out, arch, read_run).items()} == {0: [1500.0, 1490.0], 2: [800.0]}
    assert archived_traces(out, tmp_path / "nowhere", read_run) == {}
    assert campaign_dataset(out, tmp_path / "nowhere") == []
    # the archive stands in for the campaign: round sizes, the largest round <= labels
    rounds = read_rounds(arch)
    assert [s["n_dataset"] for s in rounds] == [4, 8, 12]
    assert pick_round(arch, 10)["round"] == 1
    with pytest.raises(ValueError, match="at most 3 labels"):
        pick_round(arch, 3)


def test_volumes_from_the_archive(tmp_path):
    """What the MIL-53 figures read once runs/ is gone: traced volumes and the data set's
    volumes per formula unit (H2 frames: one 2-atom "unit" each)."""
    out = _campaign(tmp_path)
    arch = tmp_path / "runs" / "tiny" / "archive" / "c_s0"
    write_archive(out, arch, {1: {0: np.array([1400.0, 1410.0])}})
    shutil.rmtree(out)
    read_run = lambda o, rounds: walker_traces(o, "volume", rounds)  # noqa: E731
    traced = archived_traces(out, arch, read_run)
    np.testing.assert_allclose(np.concatenate([x for ws in traced.values() for x in ws.values()]),
                               [1400.0, 1410.0])
    assert archived_traces(out, tmp_path / "other", read_run) == {}  # another size's archive
    dv = [volume_per_fu(a.cell, len(a), atoms_per_fu=2) for a in campaign_dataset(out, arch)]
    np.testing.assert_allclose(dv, [25.0 * (5 + i) for i in range(12)])


# ------------------------------------------------------------------------ branch
def test_branch_settings_point_round0_at_the_parent(tmp_path):
    parent = _parent(tmp_path)
    s = branch_settings(parent, 3, 40)
    # the budget counts the labels the branch makes: the relabelled round-3 structures + 40
    assert s["label_budget"] == 5 + 40
    assert s["initial"]["n_perturbed"] == 0
    assert Path(s["initial"]["structures"]) == (parent / "round_003" / "labelled.extxyz").resolve()
    assert Path(s["initial"]["data"]) == (parent / "round_002" / "dataset.extxyz").resolve()


def test_branch_settings_refuse_missing_rounds_and_no_new_labels(tmp_path):
    parent = _parent(tmp_path, r=1)
    with pytest.raises(ValueError, match="round 2 has finished"):
        branch_settings(parent, 2, 8)
    with pytest.raises(ValueError, match=">= 1"):
        branch_settings(parent, 0, 8)
    with pytest.raises(ValueError, match="new labels"):
        branch_settings(parent, 1, 0)


def test_branch_dir_from_other_settings_is_refused(tmp_path):
    parent = _parent(tmp_path)
    cfg = {"initial": branch_settings(parent, 3, 40)["initial"], "label_budget": 45}
    out = tmp_path / "branch" / "biased_300K_s0"
    check_branch_dir(out, cfg)  # nothing there yet
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    check_branch_dir(out, cfg)  # the same settings: fine
    other = {"initial": branch_settings(parent, 2, 40)["initial"], "label_budget": 45}
    with pytest.raises(ValueError, match="branched from"):
        check_branch_dir(out, other)
    with pytest.raises(ValueError, match="label_budget"):
        check_branch_dir(out, {**cfg, "label_budget": 29})


def test_branch_from_an_archive_matches_the_campaign_directory(tmp_path):
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
    write_archive(parent, arch, {})
    unpacked = tmp_path / "runs" / "unpacked" / "x_s0"
    from_dir = branch_settings(parent, 2, 10)
    with pytest.raises(ValueError, match="unpack"):
        branch_settings(arch, 2, 10)
    from_arch = branch_settings(arch, 2, 10, unpack_dir=unpacked)
    assert from_arch["label_budget"] == from_dir["label_budget"] == 4 + 10
    for key in ("structures", "data"):
        a, b = read(from_dir["initial"][key], ":"), read(from_arch["initial"][key], ":")
        assert len(a) == len(b) and all((x.positions == y.positions).all() for x, y in zip(a, b))
    assert Path(from_arch["initial"]["data"]).is_relative_to(unpacked)
    with pytest.raises(ValueError, match="no rounds"):
        branch_settings(arch, 5, 10, unpack_dir=unpacked)
