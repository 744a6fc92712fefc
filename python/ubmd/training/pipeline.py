"""Train -> fit uncertainty -> calibrate -> export, from one config; everything saved to disk.

Output directory layout:
  config.yaml        the resolved config
  members.pt         the trained members (state dicts + constructor arguments), float64
  model.pt           the exported TorchScript model file (docs/model_file.md)
  calibration.json   calibration constants
  history.json       learning curves of every member
  errors.json        train/validation errors and calibration metrics
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Sequence

import torch
from ase import Atoms

from .. import keys as K
from ..config import TrainRunConfig, save_yaml, to_dict
from ..data import (
    GraphDataset,
    label_keys_from,
    read_structure_files,
    species_map_from,
    split_indices,
)
from ..io import RunFiles
from ..model import MLIP, save_members
from ..model_file.export import ExportedModel, export_model
from ..prediction import evaluate_errors
from ..uncertainty.fit import (
    build_feature_model,
    calibrate,
    fit_head,
    raw_uncertainties,
)
from ..uncertainty.metrics import summary
from .ensemble import train_ensemble
from .trainer import torch_dtype


#: fewer validation structures than this: the calibration of the total uncertainty is warned
#: about (its constant is one quantile of that many energy errors)
MIN_VALID_FOR_CALIBRATION = 5


def check_split(cfg: TrainRunConfig, n_frames: int, valid: GraphDataset) -> None:
    """Before training: an uncertainty is calibrated on the validation split, which must then
    hold at least one structure with an energy label; with fewer than
    :data:`MIN_VALID_FOR_CALIBRATION` a warning says that the total uncertainty's scale is a
    guess (a campaign whose labels failed can get there)."""
    kind = cfg.uncertainty.kind
    if kind == "none":
        return
    if len(valid) == 0:
        raise ValueError(
            f"uncertainty.kind {kind!r} is calibrated on the validation split, but "
            f"data.valid_fraction={cfg.data.valid_fraction} of {n_frames} structure(s) leaves "
            "none: set data.valid_fraction > 0 (a fraction gives at least one validation "
            "structure) with at least 2 structures in the data, or uncertainty.kind: none")
    if not any(K.ENERGY in g for g in valid.graphs):
        raise ValueError(
            f"uncertainty.kind {kind!r} is calibrated on the energy errors of the validation "
            f"split, but none of its {len(valid)} structure(s) has an energy label: label them, "
            "change data.split_seed / data.valid_fraction, or set uncertainty.kind: none")
    n_energy = sum(1 for g in valid.graphs if K.ENERGY in g)
    if n_energy < MIN_VALID_FOR_CALIBRATION:
        alpha = cfg.uncertainty.alpha
        need = math.ceil((1 - alpha) / alpha)
        warnings.warn(
            f"the total uncertainty is calibrated on {n_energy} validation structure(s) (of "
            f"{n_frames}, data.valid_fraction {cfg.data.valid_fraction}): its scale rests on so "
            f"few energy errors that it is a rough guess (conformal calibration at alpha "
            f"{alpha:g} needs "
            f"{need} for its coverage guarantee; the atomic uncertainty uses every atom); label "
            "more structures or raise data.valid_fraction", UserWarning, stacklevel=3)


def train_from_config(cfg: TrainRunConfig, frames: list[Atoms] | None = None,
                      species_map: dict | None = None, init_members: Sequence[MLIP] | None = None,
                      label_keys: dict | None = None, on_epoch=None) -> dict:
    """Run the whole training pipeline; returns a summary dict (also in errors.json).

    ``init_members``: models (e.g. :func:`ubmd.model.load_members` of a previous run) to warm-start the
    members from instead of training from scratch (same architecture and species).
    ``label_keys``: label key names (:func:`ubmd.data.get_labels` keywords); default
    :func:`label_keys_from` ``cfg.data``. Structures may lack some labels (masked in the loss
    and the errors); a data set without any energy or forces label is refused, naming its keys.
    ``on_epoch(member, epoch, n_epochs, record, done)``: training progress
    (:func:`ubmd.training.ensemble.train_ensemble`).

    ``frames`` given and ``data.train`` unset: the frames are written to ``OUTPUT/data.extxyz``
    (labels under the standard names) and the saved config names that file, so that the run can
    be re-exported and re-calibrated later."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    files = RunFiles(out)
    keys = label_keys_from(cfg.data) if label_keys is None else label_keys
    if frames is not None and not cfg.data.train:
        # frames from memory: keep them with the run (labels under the standard names, which
        # the saved config then names), so that it can be re-exported and re-calibrated later
        # (ubmd export / calibrate read data.train)
        from ..data import LABEL_KEYS, with_standard_labels, write_structures

        frames = list(frames)
        write_structures(out / "data.extxyz", [with_standard_labels(a, keys) for a in frames])
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(
            cfg.data, train=str((out / "data.extxyz").resolve()), **LABEL_KEYS))
    save_yaml(to_dict(cfg), files.config)
    frames = read_structure_files(cfg.data.train, what="data.train") if frames is None else frames
    species_map = species_map or species_map_from(frames)
    data = GraphDataset(frames, cfg.model.cutoff, species_map, dtype=torch.float64,
                        label_keys=keys)
    data.require_labels()
    split = split_indices(len(data), cfg.data.valid_fraction, cfg.data.test_fraction,
                          cfg.data.split_seed)
    train, valid, test = data.subset(split.train), data.subset(split.valid), data.subset(split.test)
    check_split(cfg, len(data), valid)
    init_states = None if init_members is None else [m.state_dict() for m in init_members]
    results = train_ensemble(train, valid, cfg.model, cfg.training, init_states, on_epoch)
    members = [r.float64_model() for r in results]  # exact float64 reference energies
    save_members(members, files.members)
    summary_out = {"n_train": len(train), "n_valid": len(valid), "n_test": len(test),
                   "train_time_s": sum(r.time_s for r in results),
                   "best_epochs": [r.best_epoch for r in results],
                   "final_stage_epochs": [r.final_stage_epoch for r in results]}
    with open(files.history, "w") as fh:
        json.dump([r.history for r in results], fh)
    fm = build_feature_model(members, cfg.uncertainty).to(cfg.training.device)
    head = None
    if cfg.uncertainty.kind != "none":
        head = fit_head(fm, train, cfg.uncertainty)
        r_valid = raw_uncertainties(fm, head, valid)
        cal = calibrate(fm, head, valid, cfg.uncertainty, raw=r_valid)
        cal.save(files.calibration)
        summary_out["calibration"] = cal.to_dict()
        # held-out quality on the test split, else on the validation split (already computed)
        r = raw_uncertainties(fm, head, test) if len(test) else r_valid
        if "r_total" in r:
            summary_out["uncertainty_quality_total"] = summary(
                cal.total * r["u_total_labelled"], r["r_total"], cfg.uncertainty.alpha)
        if "r_atomic" in r and cal.atomic:
            summary_out["uncertainty_quality_atomic"] = summary(
                cal.atomic * r["u_atomic_labelled"], r["r_atomic"], cfg.uncertainty.alpha)
    fm.cpu()  # (the members too: export and the error summary run on the CPU)
    em = ExportedModel(fm, head)
    for name, subset in (("train", train), ("valid", valid), ("test", test)):
        if len(subset):
            summary_out[f"errors_{name}"] = evaluate_errors(em, subset)
    meta = export_model(em, files.model, torch_dtype(cfg.export_dtype),
                        extra_metadata={"config": to_dict(cfg)})
    summary_out["model_file"] = str(files.model)
    summary_out["model_hash"] = meta["model_hash"]
    with open(files.errors, "w") as fh:
        json.dump(summary_out, fh, indent=1)
    return summary_out


def train(config, frames: Sequence[Atoms] | None = None, output: str | Path | None = None,
          overrides: Sequence[str] = (), on_epoch=None) -> dict:
    """Train a model (or an ensemble), fit and calibrate its uncertainty, export ``model.pt``:
    what ``ubmd train`` does.

    Args:
        config: a YAML file (its relative paths are relative to it), a dict of the same keys
            (relative paths relative to the working directory) or a
            :class:`ubmd.config.TrainRunConfig`; every key: docs/config.md.
        frames: labelled structures (ASE Atoms with energies and forces, e.g. the ``labelled``
            of :func:`ubmd.label`) to train on instead of ``data.train``; they are written to
            ``OUTPUT/data.extxyz`` and named in the run's config, so that the run can be
            re-exported and re-calibrated later (:func:`ubmd.export`, :func:`ubmd.calibrate`).
        output: the run directory (overrides ``output``).
        overrides: ``"section.key=value"`` entries, as ``ubmd train --set``.
        on_epoch: progress callback ``(member, epoch, n_epochs, record, done)``.

    Returns the summary (also in ``OUTPUT/errors.json``): ``errors_train``/``errors_valid``
    (``energy_rmse`` eV/atom, ``forces_rmse`` eV/Å, ``stress_rmse`` eV/Å^3 ...), ``calibration``
    (constants), ``model_file`` (the exported model's path), ``train_time_s`` ...
    """
    import copy

    from ..config import (from_dict, load_train_config, merge, parse_overrides, require_files,
                          resolve_paths)
    from ..data import write_structures

    if isinstance(config, (str, Path)):
        cfg = load_train_config(config, overrides, output)
    else:
        data = copy.deepcopy(config) if isinstance(config, dict) else to_dict(config)
        over = parse_overrides(overrides)
        if output is not None:
            over["output"] = str(output)
        cfg = resolve_paths(from_dict(TrainRunConfig, merge(data, over)), Path.cwd())
    if frames is not None:
        frames = list(frames)
        out = Path(cfg.output).resolve()
        out.mkdir(parents=True, exist_ok=True)
        write_structures(out / "data.extxyz", frames)
        cfg.data.train = str(out / "data.extxyz")
        return train_from_config(cfg, frames, on_epoch=on_epoch)
    require_files(cfg.data.train, "data.train")
    return train_from_config(cfg, on_epoch=on_epoch)
