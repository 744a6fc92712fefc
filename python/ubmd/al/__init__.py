"""Active-learning campaigns with uncertainty-biased MD (METHOD.md section 7).

Modules: :mod:`.config` (schema), :mod:`.initial` (round-0 structures), :mod:`.walkers`
(walker task and outputs), :mod:`.walkers_ase` / :mod:`.walkers_lammps` (MD engines),
:mod:`.executors` (local pool, Dask), :mod:`.labels` (checkpointed labelling), :mod:`.training`,
:mod:`.pool` (pool features, selection), :mod:`.state` (resumable stages), :mod:`.loop` (the
campaign), :mod:`.report` (plots). Command line: ``ubmd al run|resume|report``.
"""

from .config import ALConfig, al_config_from_dict, load_al_config
from .loop import Campaign, resume_campaign, run_campaign

__all__ = ["ALConfig", "Campaign", "al_config_from_dict", "load_al_config", "resume_campaign",
           "run_campaign"]
