"""A training run directory (written by ``ubmd train``, or an AL round's ``train/``): its config,
re-exporting its members with a re-fitted, re-calibrated uncertainty (``ubmd export``,
:func:`export_run`) and re-calibrating it in place (``ubmd calibrate``, :func:`calibrate_run`)."""

from __future__ import annotations

from pathlib import Path

from ..config import (
    TrainRunConfig,
    check,
    from_dict,
    load_yaml,
    require_files,
    resolve_path,
    save_yaml,
    to_dict,
)
from ..data import GraphDataset, label_keys_from, read_structure_files, split_indices
from ..io import RunFiles
from ..model import load_members
from ..model_file.export import ExportedModel, export_model
from ..uncertainty.fit import build_feature_model, calibrate, fit_head
from .pipeline import check_split
from .trainer import torch_dtype


#: where an AL round keeps its run (``round_NNN/train``) and its data set (``round_NNN/``)
ROUND_RUN, ROUND_DATASET = "train", "dataset.extxyz"


def check_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a :class:`Path` if it is a directory written by ``ubmd train`` (or an AL
    round's directory, whose run is ``train/``); otherwise an error that says what was given
    instead (a model file, nothing, another directory)."""
    run_dir = Path(run_dir)
    if not RunFiles(run_dir).config.is_file() and RunFiles(run_dir / ROUND_RUN).config.is_file():
        run_dir = run_dir / ROUND_RUN  # round_NNN/ -> round_NNN/train
    if run_dir.is_file():
        raise ValueError(f"{run_dir} is a file, not a run directory: give the directory written "
                         "by `ubmd train` (holding config.yaml and members.pt)")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir} (write one with "
                                "`ubmd train`)")
    if not RunFiles(run_dir).config.is_file():
        raise FileNotFoundError(f"{run_dir} has no config.yaml: not a directory written by "
                                "`ubmd train`")
    return run_dir


def load_run_config(run_dir: str | Path) -> TrainRunConfig:
    """The checked config of a ``ubmd train`` run, ``output`` set to ``run_dir``. Relative data
    paths (runs written before paths were stored absolute) are taken relative to the run
    directory, else, where only that exists, to the working directory. An AL round's run
    written before rounds recorded their data (``data.train: null``) gets the round's
    ``dataset.extxyz``, whose labels are under the standard names."""
    run_dir = check_run_dir(run_dir).resolve()
    data = load_yaml(RunFiles(run_dir).config)
    data["output"] = str(run_dir)
    cfg = from_dict(TrainRunConfig, data)
    round_data = run_dir.parent / ROUND_DATASET
    if cfg.data.train is None and run_dir.name == ROUND_RUN and round_data.is_file():
        from ..data import LABEL_KEYS

        cfg.data.train = str(round_data)
        for key, name in LABEL_KEYS.items():
            setattr(cfg.data, key, name)
    train = cfg.data.train
    if train is not None:
        cfg.data.train = [_legacy_path(p, run_dir) for p in train] if isinstance(train, list) \
            else _legacy_path(train, run_dir)
    return cfg


def _legacy_path(p: str, run_dir: Path) -> str:
    here = resolve_path(p, run_dir)
    cwd = resolve_path(p, Path.cwd())
    return cwd if not Path(here).exists() and Path(cwd).exists() else here


def export_run(run_dir: str | Path, output: str | Path, dtype: str = "float64",
               uncertainty: str | None = None, features: str | None = None,
               cfg: TrainRunConfig | None = None) -> dict:
    """Export the members of ``run_dir`` (a ``ubmd train`` run, an AL round's ``train/`` or the
    round directory) as the model file ``output`` in precision ``dtype`` (``float32`` or
    ``float64``), with the uncertainty ``uncertainty`` (``posterior``, ``distance``,
    ``ensemble``, ``none``; default the run's) on ``features`` (``last_layer``, ``sketch``),
    fitted on the run's training split and calibrated on its validation split (config: ``cfg``,
    else the run's ``config.yaml``). Returns the model file's metadata."""
    run_dir = check_run_dir(run_dir)
    if not RunFiles(run_dir).members.exists():
        raise FileNotFoundError(f"{run_dir} has no members.pt: train first with `ubmd train`")
    cfg = load_run_config(run_dir) if cfg is None else cfg
    if uncertainty:
        cfg.uncertainty.kind = uncertainty
    if features:
        cfg.uncertainty.features = features
    check(cfg)
    if cfg.uncertainty.kind != "none":
        require_files(cfg.data.train, "data.train")
    members = load_members(RunFiles(run_dir).members)
    fm = build_feature_model(members, cfg.uncertainty)
    head = None
    if cfg.uncertainty.kind != "none":
        frames = read_structure_files(cfg.data.train, what="data.train")
        zs = members[0].atomic_numbers
        data = GraphDataset(frames, cfg.model.cutoff, {z: k for k, z in enumerate(zs)},
                            label_keys=label_keys_from(cfg.data))
        split = split_indices(len(data), cfg.data.valid_fraction, cfg.data.test_fraction,
                              cfg.data.split_seed)
        check_split(cfg, len(data), data.subset(split.valid))
        head = fit_head(fm, data.subset(split.train), cfg.uncertainty)
        calibrate(fm, head, data.subset(split.valid), cfg.uncertainty)
    return export_model(ExportedModel(fm, head), output, torch_dtype(dtype))


def calibrate_run(run_dir: str | Path, method: str | None = None, alpha: float | None = None,
                  dtype: str | None = None) -> dict:
    """Re-fit the uncertainty of ``run_dir`` on its training split and calibrate it on its
    validation split with ``method`` (``conformal``, ``max_likelihood``, ``log_regression``;
    default the run's) at miscoverage ``alpha`` (default the run's); rewrites the run's
    ``model.pt`` (in ``dtype``, default the run's ``export_dtype``), ``calibration.json`` and
    ``config.yaml``. Returns ``{"total", "atomic", "method", "alpha"}`` (calibration constants,
    dimensionless factors of the raw uncertainties)."""
    import json

    run_dir = check_run_dir(run_dir)
    cfg = load_run_config(run_dir)
    if method:
        cfg.uncertainty.calibration = method
    if alpha is not None:
        cfg.uncertainty.alpha = alpha
    check(cfg)
    files = RunFiles(run_dir)
    meta = export_run(run_dir, files.model, dtype or cfg.export_dtype, cfg=cfg)
    save_yaml(to_dict(cfg), files.config)
    cal = {"total": meta["calibration_total"], "atomic": meta["calibration_atomic"],
           "method": cfg.uncertainty.calibration, "alpha": cfg.uncertainty.alpha}
    with open(files.calibration, "w") as fh:
        json.dump(cal, fh, indent=1)
    return cal
