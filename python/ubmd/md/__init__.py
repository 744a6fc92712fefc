"""(Biased) MD runs ("walkers") with a model file: the settings (:mod:`.settings`), the task and
the files a run leaves (:mod:`.task`), the engines (:mod:`.engines`: ASE in :mod:`.ase_engine`,
LAMMPS in :mod:`.lammps_engine`) and start-structure checks (:mod:`.starts`); besides, MD with
the reference potential itself (:mod:`.reference`, the baseline of model-driven walkers) and a
well-tempered metadynamics bias on one CV (:mod:`.metadynamics`). Needs nothing from the
active-learning package: ``ubmd md`` and scripts use it directly."""

from .engines import MDRun, register_engine, resolve_engine, run_md, run_walker
from .settings import ENSEMBLES, THERMOSTATS, LammpsConfig, MDSettings
from .task import WalkerTask, runaway_temperature

__all__ = ["ENSEMBLES", "LammpsConfig", "MDRun", "MDSettings", "THERMOSTATS", "WalkerTask",
           "register_engine", "resolve_engine", "run_md", "run_walker", "runaway_temperature"]
