"""Branching a campaign: a new campaign that continues an existing one from its round ``r``.

The branch's round 0 relabels the structures the parent labelled in round ``r`` (its
``labelled.extxyz``: the walker starts of the parent's round r, ``initial.n_perturbed`` 0) on
top of the parent's round r-1 data set (``initial.data``), so the branch starts from the same
labels and the same walker starts as the parent's round r, with whatever other settings it has
(another uncertainty, selection, bias ...). The parent is a campaign directory or its archive
(:mod:`.archive`; the needed files are then unpacked first).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .archive import is_archive, unpack_round
from .layout import CampaignLayout


def branch_settings(parent: str | Path, r: int, new_labels: int,
                    unpack_dir: str | Path | None = None) -> dict:
    """The config keys (nested dict, to :func:`ubmd.config.merge` into a campaign config) of a
    branch from round ``r`` of the campaign ``parent`` with ``new_labels`` labels beyond the
    relabelled ones: ``label_budget`` and ``initial`` (``structures``, ``n_perturbed`` 0,
    ``data``). An archive is unpacked into ``unpack_dir`` (required then). ValueError for a round
    below 1, no new labels, or a parent whose round ``r`` has not finished."""
    if r < 1:
        raise ValueError("the branch round must be >= 1 (round 0 of a campaign has no earlier "
                         "data set)")
    if new_labels < 1:
        raise ValueError(f"a branch needs new labels (new_labels >= 1), got {new_labels}")
    parent = Path(parent)
    if is_archive(parent):
        if unpack_dir is None:
            raise ValueError(f"{parent} is a campaign archive: give a folder to unpack it into")
        parent = unpack_round(parent, r, unpack_dir)
    layout = CampaignLayout(parent)
    new, data = layout.round(r).labelled, layout.round(r - 1).dataset
    summary = layout.round(r).summary_file
    for f in (new, data, summary):
        if not f.exists():
            raise ValueError(f"branch: {f} not found; the parent must be a campaign directory "
                             f"whose round {r} has finished")
    # the budget counts the labels a campaign makes (initial.data is not counted): the parent's
    # round-r structures, relabelled, plus the new ones
    relabelled = int(json.loads(summary.read_text())["n_new_labels"])
    return {"label_budget": relabelled + int(new_labels),
            "initial": {"structures": str(new.resolve()), "n_perturbed": 0,
                        "data": str(data.resolve())}}


def check_branch_dir(out: str | Path, cfg: dict) -> None:
    """ValueError when the campaign directory ``out`` was started from another parent, round
    or label budget than the config ``cfg`` names (rerunning it would skip it as finished, or
    analyse it under the wrong settings). Nothing to check without ``out/config.yaml``."""
    old = CampaignLayout(out).config
    if not old.exists():
        return
    prev = yaml.safe_load(old.read_text())
    for key in ("data", "structures"):
        if str(prev["initial"].get(key)) != str(cfg["initial"].get(key)):
            raise ValueError(f"{out} was branched from {prev['initial'].get(key)}, not "
                             f"{cfg['initial'].get(key)}; use another directory")
    if int(prev["label_budget"]) != int(cfg["label_budget"]):
        raise ValueError(f"{out} was run with label_budget {prev['label_budget']}, not "
                         f"{cfg['label_budget']}; use another directory")
