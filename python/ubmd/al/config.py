"""Config schema of an active-learning campaign (``ubmd al run config.yaml``).

Reuses the training schema of :mod:`ubmd.config` (``model``, ``training``, ``uncertainty``,
``data`` for the validation split, ``export_dtype``) and adds the AL-specific sections. Unknown
keys are errors, as everywhere in ubmd; values are converted and checked (choices, ranges) when
loaded, and relative paths in a file are relative to the file (every key: docs/config.md).
Units: Å, eV, fs, K; pressures in bar (converted to eV/Å^3 for ASE and passed as-is to LAMMPS
``units metal``).

Example (all sections optional except ``initial.structures`` and ``reference``)::

    output: runs/cu_al
    label_budget: 64
    max_rounds: 5
    initial: {structures: start.extxyz, n_perturbed: 7}
    reference: {calculator: emt, n_workers: 2}
    walkers: {engine: ase, n_walkers: 4, ensemble: nvt, temperature: 600, max_steps: 400,
              sample_every: 20, threshold: 1.0, tau_forces: 0.25}
    selection: {method: max_det, batch_size: 8}
    model: {cutoff: 4.0, hidden: [16, 16]}
    training: {max_epochs: 50}
"""

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from ..config import (DataConfig, ModelConfig, TrainingConfig, TrainRunConfig, UncertaintyConfig,
                      check, check_ensemble, dtype_names, from_dict, join_key, load_yaml,
                      resolve_paths, save_yaml, setting, to_dict)
from ..executors import EXECUTOR_KINDS as EXECUTORS
from ..keys import SELECTION_METHODS
from ..md.engines import AUTO, ENGINES as ENGINE_RUNNERS
from ..labelling.settings import ReferenceConfig
from ..md.settings import MDSettings

START_FROM = ("previous", "initial", "dataset")
Paths = Optional[Union[str, list[str]]]
Numbers = Union[float, list[float]]


@dataclass
class InitialConfig:
    """Round-0 data: the start structure(s) plus perturbed copies, all labelled."""

    structures: Paths = setting(None, path=True)  # path or list of paths (anything ASE reads);
    # required
    index: str = ":"  # ASE index of the frames taken from each file, e.g. "0" for the first
    n_perturbed: int = setting(7, ge=0)  # perturbed copies per start structure
    displacement: float = setting(0.02, ge=0)  # Å, uniform random shift in [-d, d] per component
    strain: float = setting(0.05, ge=0, lt=1)  # periodic cells: symmetric strain components
    # uniform in [-s, s]
    seed: int = setting(0, ge=0)
    data: Paths = setting(None, path=True)  # optional already-labelled extxyz added to the
    # round-0 dataset

    def _check(self, where: str) -> None:
        parse_index(self.index, join_key(where, "index"))


def parse_index(index, key: str = "initial.index"):
    """An ASE frame index string (``"0"``, ``"-1"``, ``"2:"``, ``"::10"``) as an int or slice;
    anything else is a ValueError naming ``key``."""
    text = str(index).strip()
    parts = text.split(":")
    try:
        if len(parts) == 1:
            return int(parts[0])
        if len(parts) <= 3:
            nums = [int(p) if p.strip() else None for p in parts]
            if len(nums) == 3 and nums[2] == 0:
                raise ValueError
            return slice(*nums)
    except ValueError:
        pass
    raise ValueError(f"{key} must be a frame number or a slice of frame numbers (0-based; "
                     f"\"0\", \"-1\", \"2:\", \"0:10:2\", \":\" for all), got {index!r}")


@dataclass
class WalkerConfig(MDSettings):
    """Biased MD walkers that explore with the current model: the settings of each MD run
    (:class:`ubmd.md.settings.MDSettings`) plus how many run, where they start, and which
    temperatures and pressures they are given."""

    engine: str = setting("ase", choices=lambda: tuple(ENGINE_RUNNERS) + (AUTO,))  # auto: lammps
    # when the plugin is found, else ase
    n_walkers: int = setting(8, ge=1)
    start_from: str = setting("previous", choices=START_FROM)  # previous: last round's labelled
    # structures; initial: round 0's; dataset: the whole data set so far, seeded random order
    temperature: Numbers = setting(300.0, gt=0)  # K; a list assigns temperatures to walkers
    # cyclically
    pressure: Numbers = 0.0  # bar (npt); a list alternates between walkers, e.g. [2500, -2500]
    # k: a round's threshold becomes max(threshold, k * median over the labelled structures of
    # their largest calibrated atomic uncertainty) (see ubmd.al.threshold)
    threshold_relative: Optional[float] = setting(None, gt=0)
    # a campaign's walkers go on after a crossing (20 times; the crossing frame is a candidate)
    # instead of stopping at the first one (the paper's rule, 0; also the default of a single
    # run, ubmd md): over 3 seeds of alanine dipeptide the biased data were then the more
    # uniform ones per label (docs/benchmarks.md, issue #23)
    reflections: int = setting(20, ge=0)
    seed: int = setting(0, ge=0)

    def _check(self, where: str) -> None:
        for name in ("temperature", "pressure"):
            if getattr(self, name) == []:
                raise ValueError(f"{join_key(where, name)} must be a number or a non-empty list")
        super()._check(where)


@dataclass
class SelectionConfig:
    method: str = setting("max_det", choices=SELECTION_METHODS)
    batch_size: int = setting(8, ge=1)
    seed: int = setting(0, ge=0)


@dataclass
class ExecutorConfig:
    """Where walkers (and labelling jobs, for dask) run concurrently."""

    kind: str = setting("local", choices=EXECUTORS)  # local (worker processes) | dask
    # (dask.distributed); see ubmd.executors
    n_workers: int = setting(2, ge=1)  # local pool size / LocalCluster workers
    address: Optional[str] = None  # dask scheduler address; None: start a LocalCluster
    inline: bool = False  # local: run walkers in the driver's own process (debugging, profiling);
    # default: in worker processes, so that a walker that crashes its process is recorded as
    # crashed instead of taking the campaign down

    def make(self):
        """The :class:`ubmd.executors.Executor` this section describes."""
        from ..executors import make_executor

        return make_executor(self.kind, self.n_workers, self.address, self.inline)


@dataclass
class ALConfig:
    output: str = setting("runs/al", path=True)
    label_budget: int = setting(512, ge=1)  # total reference calculations (initial data included)
    max_rounds: int = setting(100, ge=1)  # rounds of train -> sample -> select -> label
    warm_start: bool = False  # initialise each round's model from the previous round's
    dihedrals: Optional[dict[str, list[int]]] = None  # e.g. {phi: [4, 6, 8, 14], psi: [6, 8,
    # 14, 16]}: coverage is logged
    initial: InitialConfig = field(default_factory=InitialConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    walkers: WalkerConfig = field(default_factory=WalkerConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    export_dtype: str = setting("float64", choices=dtype_names)

    def train_config(self, output: str | Path, data_file: str | Path | None = None
                     ) -> TrainRunConfig:
        """The training config of one round, as a ``ubmd train`` run of its own: ``output`` and
        ``data.train`` (the round's ``dataset.extxyz``, whose labels are stored under the
        standard names, so the label keys are the standard ones) absolute, so that
        ``ubmd export``/``calibrate``/``select --model`` work on the round's ``train/`` from any
        directory. Without ``data_file`` the data are passed in memory (``data.train`` null)."""
        from ..data import LABEL_KEYS

        train = None if data_file is None else str(Path(data_file).resolve())
        data = dataclasses.replace(self.data, train=train, **LABEL_KEYS)
        return TrainRunConfig(data=data, model=self.model, training=self.training,
                              uncertainty=self.uncertainty, output=str(Path(output).resolve()),
                              export_dtype=self.export_dtype)

    def _check(self, where: str) -> None:
        if self.initial.structures is None:
            raise ValueError("initial.structures is required: the start structure file(s)")
        if self.reference.calculator is None:
            raise ValueError("reference.calculator is required, e.g. 'emt' or 'gfn2-xtb' "
                             "(see ubmd.labelling.make_calculator)")
        from ..labelling.calculators import normalise_spec

        try:
            normalise_spec(self.reference.calculator)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"reference.calculator: {exc}") from None
        if self.uncertainty.kind == "none":
            raise ValueError("active learning needs an uncertainty: uncertainty.kind must be "
                             "posterior, distance or ensemble")
        check_ensemble(self.uncertainty, self.training)
        if self.walkers.ensemble == "npt" and not self.reference.stress:
            warnings.warn("walkers.ensemble npt with reference.stress false: the model learns no "
                          "stress, so the barostat follows an unfitted virial (and a bias "
                          "stress, tau_stress, an uncalibrated one); label stresses unless the "
                          "reference calculator cannot give them", UserWarning, stacklevel=2)
        if not self.data.valid_fraction > 0:
            raise ValueError("data.valid_fraction must be > 0 (a fraction in (0, 1) or a count "
                             ">= 1): calibration needs a validation split")
        if self.data.train is not None:
            raise ValueError("data.train is not used by AL campaigns; give start structures in "
                             "initial.structures and extra labelled data in initial.data")
        if self.dihedrals is not None and (len(self.dihedrals) != 2 or any(
                len(v) != 4 or min(v) < 0 for v in self.dihedrals.values())):
            raise ValueError("dihedrals must map two names to 4 atom indices (>= 0) each, e.g. "
                             "{phi: [4, 6, 8, 14], psi: [6, 8, 14, 16]}")
        for name, v in (self.dihedrals or {}).items():
            if len(set(v)) != 4:
                raise ValueError(f"dihedrals.{name} {v}: the 4 atom indices must be distinct (a "
                                 "dihedral angle of a repeated atom is undefined)")


def validate(cfg: ALConfig) -> ALConfig:
    """Convert and check every value in place (types, choices, ranges, cross-checks); raises
    ValueError naming the key."""
    return check(cfg)


def al_config_from_dict(data: dict) -> ALConfig:
    """An AL config from a dict (relative paths stay relative to the working directory); an
    unknown (e.g. misspelt) key is an error naming it and the closest valid key."""
    return from_dict(ALConfig, data)


def load_al_config(path: str | Path) -> ALConfig:
    """Read and validate a campaign YAML; relative paths in it (``output``,
    ``initial.structures``, ``initial.data``, ``walkers.lammps.plugin``, the file of a
    ``reference.calculator`` ``import: file.py:Class``) are taken relative to the file."""
    path = Path(path)
    data = resolve_paths(load_yaml(path), path.resolve().parent, ALConfig)
    return al_config_from_dict(data)


def save_al_config(cfg: ALConfig, path: str | Path) -> None:
    save_yaml(to_dict(cfg), path)
