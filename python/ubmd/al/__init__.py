"""Active-learning campaigns with uncertainty-biased MD (the paper's method, docs/method.md).

Modules: :mod:`.config` (schema), :mod:`.layout` (every file of a campaign and the stage marks),
:mod:`.stages` (propose, label, train, sample, select), :mod:`.campaign` (the driver loop, lock,
resume), :mod:`.summary` (round summaries, log lines), :mod:`.report` (plots), :mod:`.initial`
(round-0 structures), :mod:`.walkers` (which walker starts where), :mod:`.threshold` (the round's
stop threshold), :mod:`.training` (a round's training),
:mod:`.archive` (a campaign directory read back, and its compact archive), :mod:`.branch` (a
campaign that continues another from one of its rounds).
Command line: ``ubmd al run|resume|report``.
"""

from .campaign import Campaign, resume_campaign, run_campaign
from .config import ALConfig, al_config_from_dict, load_al_config

__all__ = ["ALConfig", "Campaign", "al_config_from_dict", "load_al_config", "resume_campaign",
           "run_campaign"]
