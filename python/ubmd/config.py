"""One config schema (dataclasses + YAML) for training, uncertainty, bias and AL campaigns.

Unknown keys are errors (with the list of valid keys), so a typo never silently does nothing.
The resolved config is written next to every model and every AL round (``config.yaml``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


@dataclass
class ModelConfig:
    cutoff: float = 5.0  # Å
    n_radial: int = 8
    n_basis: int = 12
    hidden: list = field(default_factory=lambda: [256, 256])


@dataclass
class TrainingConfig:
    max_epochs: int = 1000
    batch_size: int = 16
    lr: float = 1e-2  # NTK-scaled layers: larger steps than usual (3e-3 trained 2-3x worse on ala2)
    lr_final: float = 1e-4  # learning rate decays exponentially from lr to lr_final over max_epochs
    weight_energy: float = 1.0  # loss = w_E SSE(E) + w_F SSE(F) + w_W SSE(virial), per structure
    weight_forces: float = 4.0
    weight_virial: float = 0.01
    final_fraction: float = 0.0  # >0: the last fraction of the epoch/time budget (or, after an
    # early stop, `patience` more epochs) trains with weight_energy = final_weight_energy and keeps
    # the best checkpoint of that stage: an energy-weighted final stage after force-dominated
    # training, as in MACE's second stage (0 = off)
    final_weight_energy: float = 100.0
    patience: int = 100  # early stopping (epochs without validation improvement)
    max_time_s: Optional[float] = None  # wall-clock budget per model
    valid_every: int = 1
    ema_decay: float = 0.0  # >0: validate, keep and export an exponential moving average of the
    # weights (updated every optimiser step; 0.99 is typical); 0 = the raw weights
    weight_decay: float = 0.0  # decoupled (AdamW-style) weight decay on the readout weights
    dtype: str = "float32"
    seed: int = 0
    n_models: int = 1  # ensemble size (members get seeds seed, seed+1, ...)
    n_workers: int = 1  # ensemble members trained at once, one process each (1: in this process)
    progress: bool = True
    compile: bool = False  # torch.compile the training step (inductor; needs a C++ compiler):
    # about 1.5x faster per epoch on CPU after a 30-60 s warm-up; worth it for runs of minutes
    num_threads: Optional[int] = 1  # torch intra-op threads while training (None: torch default).
    # One thread is fastest for these small per-atom models on a shared machine (measured 5-70x
    # faster than 2 threads on a loaded 2-core box); raise it for big models on idle many-core nodes.


@dataclass
class UncertaintyConfig:
    kind: str = "posterior"  # posterior | distance | ensemble | none
    features: str = "last_layer"  # last_layer | sketch (ensemble uncertainty uses member energies)
    n_sketch: int = 512
    sketch_seed: int = 0
    calibration: str = "conformal"  # conformal | max_likelihood | log_regression
    alpha: float = 0.05
    max_train_atoms: int = 20000  # distance uncertainty: reduce atom features by max-dist above this


@dataclass
class DataConfig:
    train: Any = None  # path or list of paths (extxyz or anything ASE reads)
    valid_fraction: float = 0.1
    test_fraction: float = 0.0
    split_seed: int = 0


@dataclass
class TrainRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    output: str = "runs/model"
    export_dtype: str = "float64"


def from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass ``cls`` from a dict, recursively, rejecting unknown keys."""
    data = dict(data or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} in {where or cls.__name__}; "
                         f"valid keys: {sorted(names)}")
    kwargs = {}
    for name, f in names.items():
        if name not in data:
            continue
        value = data[name]
        ftype = f.type if not isinstance(f.type, str) else globals().get(f.type, None)
        if dataclasses.is_dataclass(ftype) and isinstance(value, dict):
            value = from_dict(ftype, value, f"{where}.{name}" if where else name)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a YAML mapping")
    return data


def save_yaml(data: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    tmp.replace(path)
