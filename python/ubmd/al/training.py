"""Train one AL round's model: :func:`ubmd.training.train_from_config` on the round's dataset.

From scratch by default (the paper retrains every step with new seeds: member seeds are shifted
by the round number); with ``warm_start`` the members start from the previous round's weights
when the architecture and species still match (else from scratch, said in the summary).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from ase import Atoms

from ..data import LABEL_KEYS, species_map_from
from ..io import RunFiles
from ..model import load_members
from ..model.members import matches
from ..training import train_from_config


def train_round(cfg, dataset: Sequence[Atoms], outdir: str | Path, warm_from: str | Path | None,
                round_index: int = 0, data_file: str | Path | None = None,
                on_epoch=None) -> dict:
    """Train, calibrate and export into ``outdir``; returns the training summary dict.

    ``data_file``: the file ``dataset`` was read from (the round's ``dataset.extxyz``), recorded
    as ``data.train`` of ``outdir/config.yaml`` so that the round's run can be re-exported and
    re-calibrated like any ``ubmd train`` run. ``on_epoch``: progress callback
    (:func:`ubmd.training.train_from_config`)."""
    tcfg = cfg.train_config(outdir, data_file)
    tcfg.training = dataclasses.replace(tcfg.training,
                                        seed=cfg.training.seed + 1000 * int(round_index))
    species_map = species_map_from(dataset)
    init = None
    warm_note = "scratch"
    if warm_from is not None:
        members = load_members(RunFiles(warm_from).members)
        if matches(members, species_map, cfg.model, cfg.training.n_models):
            init, warm_note = members, f"warm start from {warm_from}"
        else:
            warm_note = "scratch (previous model incompatible: species or architecture changed)"
    # the data set holds labels under the standard names (initial.data was converted on reading)
    summary = train_from_config(tcfg, list(dataset), species_map, init_members=init,
                                label_keys=dict(LABEL_KEYS), on_epoch=on_epoch)
    summary["initialisation"] = warm_note
    return summary
