"""The sections of ``ubmd train`` configs (also the model, training and uncertainty sections of
an AL campaign): data, model, training, uncertainty, output. Every key: docs/config.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from ..keys import CALIBRATION_METHODS, DTYPES, FEATURE_KINDS, UNCERTAINTY_KINDS
from .schema import (from_dict, join_key, load_yaml, merge, parse_overrides, resolve_paths,
                     setting)


def check_device(device: str, key: str = "device", available: bool = True) -> None:
    """ValueError unless ``device`` is cpu, cuda or cuda:N and (``available``) this torch can
    use it here. Reading a config checks the name only (a run trained on a GPU stays readable,
    exportable and re-calibratable on a CPU machine); training and the calculator check both."""
    name = str(device)
    if name == "cpu":
        return
    if not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ValueError(f"{key} must be cpu, cuda or cuda:N, got {name!r}")
    if not available:
        return
    import torch

    if not torch.cuda.is_available():
        why = ("is a CPU-only build" if torch.version.cuda is None
               else "sees no CUDA device (no GPU visible, or its driver is missing)")
        raise ValueError(f"{key} is {name!r}, but this torch ({torch.__version__}) {why}: use "
                         "cpu, or run on a GPU node with a CUDA build of torch")
    if ":" in name and int(name[5:]) >= torch.cuda.device_count():
        raise ValueError(f"{key} is {name!r}, but only {torch.cuda.device_count()} CUDA "
                         "device(s) are visible")


def dtype_names() -> tuple:
    """The training/export dtypes."""
    return tuple(DTYPES)


@dataclass
class ModelConfig:
    cutoff: float = setting(5.0, gt=0)  # Å
    n_radial: int = setting(8, ge=1)
    n_basis: int = setting(12, ge=1)
    hidden: list[int] = setting(factory=lambda: [256, 256], ge=1)
    repulsion: bool = True  # short-range ZBL pair baseline, zero beyond repulsion_range x the
    # sum of covalent radii (ubmd.model.repulsion): physical energies where there are no data
    repulsion_range: float = setting(0.75, gt=0)


@dataclass
class TrainingConfig:
    max_epochs: int = setting(1000, ge=1)
    batch_size: int = setting(16, ge=1)
    lr: float = setting(1e-2, gt=0)  # NTK-scaled layers: larger steps than usual (3e-3 trained
    # 2-3x worse on ala2)
    lr_final: float = setting(1e-4, ge=0)  # learning rate decays exponentially from lr to
    # lr_final over max_epochs
    weight_energy: float = setting(1.0, ge=0)  # loss = w_E SSE(E) + w_F SSE(F) + w_W SSE(virial),
    # per structure
    weight_forces: float = setting(4.0, ge=0)
    weight_virial: float = setting(0.01, ge=0)
    final_fraction: float = setting(0.0, ge=0, lt=1)  # >0: the last fraction of the epoch/time
    # budget (or, after an early stop, `patience` more epochs) trains with weight_energy =
    # final_weight_energy and keeps the best checkpoint of that stage: an energy-weighted final
    # stage after force-dominated training, as in MACE's second stage (0 = off)
    final_weight_energy: float = setting(100.0, ge=0)
    patience: int = setting(100, ge=1)  # early stopping (epochs without validation improvement)
    max_time_s: Optional[float] = setting(None, gt=0)  # wall-clock budget per model
    valid_every: int = setting(1, ge=1)
    ema_decay: float = setting(0.0, ge=0, lt=1)  # >0: validate, keep and export an exponential
    # moving average of the weights (updated every optimiser step; 0.99 is typical); 0 = the raw
    # weights
    weight_decay: float = setting(0.0, ge=0)  # decoupled (AdamW-style) weight decay on the
    # readout weights
    dtype: str = setting("float32", choices=dtype_names)
    seed: int = setting(0, ge=0)
    n_models: int = setting(1, ge=1)  # ensemble size (members get seeds seed, seed+1, ...)
    n_workers: int = setting(1, ge=1)  # ensemble members trained at once, one process each (1: in
    # this process)
    progress: bool = True
    compile: bool = False  # torch.compile the training step (inductor; needs a C++ compiler):
    # on one CPU thread 1.14x faster per step on 22-atom batches, no faster on 152-atom ones,
    # after ~80 s of compilation (docs/performance.md); worth it only for long trainings
    num_threads: Optional[int] = setting(1, ge=1)  # torch intra-op threads while training (None:
    # torch default). One thread is fastest for these small per-atom models on a shared machine
    # (measured 5-70x faster than 2 threads on a loaded 2-core box); raise it for big models on
    # idle many-core nodes.
    device: str = "cpu"  # where training, the uncertainty fit and its calibration run: cpu,
    # cuda or cuda:N (needs a CUDA build of torch and a visible GPU; checked when the config is
    # read)

    def _check(self, where: str) -> None:
        check_device(self.device, join_key(where, "device"), available=False)


@dataclass
class UncertaintyConfig:
    kind: str = setting("posterior", choices=UNCERTAINTY_KINDS)
    features: str = setting("last_layer", choices=FEATURE_KINDS)  # ensemble uncertainty uses
    # member energies instead
    n_sketch: int = setting(512, ge=1)
    sketch_seed: int = setting(0, ge=0)
    calibration: str = setting("conformal", choices=CALIBRATION_METHODS)
    alpha: float = setting(0.05, gt=0, lt=1)
    max_train_atoms: int = setting(20000, ge=1)  # distance uncertainty: reduce atom features by
    # max-dist above this


@dataclass
class DataConfig:
    train: Optional[Union[str, list[str]]] = setting(None, path=True)  # path or list of paths
    # (extxyz or anything ASE reads)
    valid_fraction: Union[int, float] = 0.1  # a fraction in [0, 1) or a count >= 1
    test_fraction: Union[int, float] = 0.0
    split_seed: int = setting(0, ge=0)
    # where the labels are: an atoms.calc result, atoms.info (energy, virial) or atoms.arrays
    # (forces) entry of this name; virial = -stress * volume (eV, GAP/MACE convention)
    energy_key: str = "energy"
    forces_key: str = "forces"
    stress_key: str = "stress"
    virial_key: str = "virial"

    def _check(self, where: str) -> None:
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (0 <= value < 1 or (value >= 1 and float(value).is_integer())):
                raise ValueError(f"{join_key(where, name)} must be a fraction in [0, 1) or a whole "
                                 f"count >= 1 of structures, got {value}")
        if sum(v for v in (self.valid_fraction, self.test_fraction) if v < 1) >= 1:
            raise ValueError(f"{join_key(where, 'valid_fraction')} + "
                             f"{join_key(where, 'test_fraction')} must be < 1: no training data "
                             "would be left")


@dataclass
class TrainRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    output: str = setting("runs/model", path=True)
    export_dtype: str = setting("float64", choices=dtype_names)

    def _check(self, where: str) -> None:
        check_ensemble(self.uncertainty, self.training, where)


def check_ensemble(unc: UncertaintyConfig, training: TrainingConfig, where: str = "") -> None:
    """Ensemble uncertainty needs several members (else it fails only after training)."""
    if unc.kind == "ensemble" and training.n_models < 2:
        raise ValueError(f"{join_key(where, 'uncertainty.kind')} ensemble needs "
                         f"{join_key(where, 'training.n_models')} >= 2, got {training.n_models}")


def load_train_config(path: str | Path, overrides=(), output: str | Path | None = None
                      ) -> TrainRunConfig:
    """The ``ubmd train`` config: relative paths in the file are relative to the file; those of
    ``overrides`` (``--set key=value``) and ``output`` (``-o``), given on the command line, and
    defaults are relative to the working directory. Every path of the result is absolute."""
    path = Path(path)
    data = resolve_paths(load_yaml(path), path.resolve().parent, TrainRunConfig)
    over = parse_overrides(overrides)
    if output is not None:
        over["output"] = str(output)
    merge(data, resolve_paths(over, Path.cwd(), TrainRunConfig))
    return resolve_paths(from_dict(TrainRunConfig, data), Path.cwd())
