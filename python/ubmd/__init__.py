"""ubmd: uncertainty-biased molecular dynamics for active learning of MLIPs, inside LAMMPS.

The names a driver script needs, from the top level (each is imported when first used, so
``import ubmd`` itself loads neither torch nor ASE)::

    import ubmd

    labelled = ubmd.label(frames, "emt").labelled            # reference labels
    summary = ubmd.train(config, frames=labelled)             # train, calibrate, export
    run = ubmd.run_md(summary["model_file"], start, "md/w0", tau_forces=0.25, max_steps=500)
    picks = ubmd.select(run.candidates, config["output"], batch_size=8)
    ubmd.Campaign(ubmd.load_al_config("al.yaml")).run()   # or a whole campaign

Every name, with its documentation: docs/api.rst (the reference site); how they fit together:
docs/python.md. The subpackages hold the rest (:mod:`ubmd.al`, :mod:`ubmd.md`,
:mod:`ubmd.training`, ...; their layers: docs/architecture.md).
"""

from __future__ import annotations

__version__ = "0.1.0"

#: public name -> "module:attribute", imported on first access
_API = {
    # models: train, export, calibrate, evaluate, load
    "train": "ubmd.training.pipeline:train",
    "export": "ubmd.training.runs:export_run",
    "calibrate": "ubmd.training.runs:calibrate_run",
    "evaluate": "ubmd.evaluation:evaluate_model_file",
    "load_train_config": "ubmd.config:load_train_config",
    "TrainRunConfig": "ubmd.config:TrainRunConfig",
    "read_metadata": "ubmd.model_file:read_metadata",
    "load_model": "ubmd.model_file.load:load_model_file",
    "UBMDCalculator": "ubmd.calculator:UBMDCalculator",
    # MD
    "run_md": "ubmd.md.engines:run_md",
    "MDRun": "ubmd.md.engines:MDRun",
    "MDSettings": "ubmd.md.settings:MDSettings",
    "WalkerTask": "ubmd.md.task:WalkerTask",
    "run_walker": "ubmd.md.engines:run_walker",
    "runaway_temperature": "ubmd.md.task:runaway_temperature",
    # data, labels, selection
    "read_structures": "ubmd.data:read_structures",
    "label": "ubmd.labelling:label_structures",
    "make_calculator": "ubmd.labelling:make_calculator",
    "initial_structures": "ubmd.al.initial:initial_structures",
    "select": "ubmd.selection.pool:select",
    "select_batch": "ubmd.selection:select_batch",
    # campaigns
    "Campaign": "ubmd.al.campaign:Campaign",
    "StageContext": "ubmd.al.stages:StageContext",
    "RoundLayout": "ubmd.al.layout:RoundLayout",
    "CampaignLayout": "ubmd.al.layout:CampaignLayout",
    "ALConfig": "ubmd.al.config:ALConfig",
    "load_al_config": "ubmd.al.config:load_al_config",
    "al_config_from_dict": "ubmd.al.config:al_config_from_dict",
    "run_campaign": "ubmd.al.campaign:run_campaign",
    "resume_campaign": "ubmd.al.campaign:resume_campaign",
    # logging and errors
    "log_to_stderr": "ubmd.progress:log_to_stderr",
    "InputError": "ubmd.errors:InputError",
    "RunStopped": "ubmd.errors:RunStopped",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str):
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'ubmd' has no attribute {name!r}")
    import importlib

    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
