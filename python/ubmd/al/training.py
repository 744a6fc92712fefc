"""Train one AL round's model: :func:`ubmd.workflow.train_from_config` on the round's dataset.

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
from ..workflow import load_members, train_from_config


def _compatible(members, species_map: dict, cfg) -> bool:
    m = members[0]
    return (len(members) == cfg.training.n_models
            and list(m.atomic_numbers) == sorted(species_map, key=species_map.get)
            and abs(float(m.cutoff) - cfg.model.cutoff) < 1e-12
            and m.descriptor.n_radial == cfg.model.n_radial
            and m.descriptor.n_basis == cfg.model.n_basis
            and [layer.d_out for layer in m.layers][:-1] == list(cfg.model.hidden))


def train_round(cfg, dataset: Sequence[Atoms], outdir: str | Path, warm_from: str | Path | None,
                round_index: int = 0) -> dict:
    """Train, calibrate and export into ``outdir``; returns the training summary dict."""
    tcfg = cfg.train_config(outdir)
    tcfg.training = dataclasses.replace(tcfg.training,
                                        seed=cfg.training.seed + 1000 * int(round_index))
    species_map = species_map_from(dataset)
    init = None
    warm_note = "scratch"
    if warm_from is not None:
        members = load_members(Path(warm_from) / "members.pt")
        if _compatible(members, species_map, cfg):
            init, warm_note = members, f"warm start from {warm_from}"
        else:
            warm_note = "scratch (previous model incompatible: species or architecture changed)"
    # the data set holds labels under the standard names (initial.data was converted on reading)
    summary = train_from_config(tcfg, list(dataset), species_map, init_members=init,
                                label_keys=dict(LABEL_KEYS))
    summary["initialisation"] = warm_note
    return summary
