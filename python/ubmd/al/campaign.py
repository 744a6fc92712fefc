"""The active-learning campaign (METHOD.md section 7): the driver loop over rounds and stages, the
lock on the campaign directory, resume, and the check that a directory is continued with the
config it was started with.

A round runs the stages of :mod:`ubmd.al.stages` that its ``state.json`` does not mark done
(propose, label, train; then, unless the label budget or the round limit is reached, sample and
select), writes its summary and log line (:mod:`ubmd.al.summary`), and ``campaign.json``. A
killed campaign resumes from the first unmarked stage (``ubmd al resume``), losing no label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from .config import ALConfig, load_al_config, save_al_config
from .layout import CampaignLayout, RoundLayout
from .stages import STAGE_FUNCTIONS, StageContext
from .summary import campaign_record, format_log_line, round_summary

FIRST_STAGES = ("propose", "label", "train")  # every round
LAST_STAGES = ("sample", "select")  # every round but the last


class Campaign:
    """Run or resume the campaign described by ``cfg`` in ``cfg.output``.

    ``log``: where progress lines go (default: printed; every line is also appended to
    ``log.txt``). ``stages``: stage functions replacing the built-in ones by name (e.g.
    ``{"label": my_label}``; signature ``fn(ctx: StageContext, rl: RoundLayout)``, see
    :mod:`ubmd.al.stages`)."""

    def __init__(self, cfg: ALConfig, log: Callable[[str], None] | None = None,
                 stages: Mapping[str, Callable] | None = None):
        self.cfg = absolute_paths(cfg)
        self.layout = CampaignLayout(cfg.output)
        unknown = set(stages or {}) - set(STAGE_FUNCTIONS)
        if unknown:
            raise ValueError(f"unknown stage(s) {sorted(unknown)}; stages: "
                             f"{', '.join(STAGE_FUNCTIONS)}")
        self.stages = {**STAGE_FUNCTIONS, **(stages or {})}
        self._print = log or (lambda s: print(s, flush=True))

    def log(self, line: str) -> None:
        self._print(line)
        self.layout.append_log(line)

    def run(self) -> dict:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        lock = acquire_campaign_lock(self.layout.root)
        save_al_config(self.cfg, self.layout.config)
        ctx = StageContext(self.cfg, self.layout, self.log)
        try:
            r = 0
            while True:
                finished = self.run_round(ctx, self.layout.round(r))
                self.layout.write_campaign(campaign_record(self.layout, r, finished))
                if finished:
                    break
                r += 1
        finally:
            ctx.close()
            lock.close()
        return self.layout.read_campaign()

    def run_round(self, ctx: StageContext, rl: RoundLayout) -> bool:
        """Run the round's unfinished stages; True when it is the campaign's last round."""
        for stage in FIRST_STAGES:
            if not rl.done(stage):
                self.stages[stage](ctx, rl)
        last = self.is_last(rl.index)
        if not last:
            for stage in LAST_STAGES:
                if not rl.done(stage):
                    self.stages[stage](ctx, rl)
        summary = round_summary(self.cfg, self.layout, rl, last)
        rl.write_summary(summary)
        self.log(format_log_line(summary))
        return last

    def is_last(self, r: int) -> bool:
        return (self.layout.labels_used(r) >= self.cfg.label_budget
                or r + 1 >= self.cfg.max_rounds)

    def read_campaign(self) -> dict:
        return self.layout.read_campaign()


def acquire_campaign_lock(directory: str | Path):
    """An exclusive ``flock`` on the campaign directory's lock file for as long as the returned
    file is open (the kernel drops it when the process dies, so a killed run leaves no stale
    lock). Two drivers on one directory would label, train and write the same rounds over each
    other."""
    import fcntl
    import os

    path = CampaignLayout(directory).lock_file
    fh = open(path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise RuntimeError(f"{path.parent} is in use by {holder}: one campaign directory takes "
                           "one driver at a time (wait for it, or stop it and `ubmd al resume` "
                           "it)") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
    fh.flush()
    return fh


def absolute_paths(cfg: ALConfig) -> ALConfig:
    """Make the input paths of ``cfg`` absolute (relative to the working directory), so that the
    config saved in the campaign directory works from anywhere."""
    cfg.initial.structures = _absolute(cfg.initial.structures)
    cfg.initial.data = _absolute(cfg.initial.data)
    if cfg.walkers.lammps.plugin:
        cfg.walkers.lammps.plugin = _absolute(cfg.walkers.lammps.plugin)
    return cfg


def _absolute(value):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_absolute(v) for v in value]
    return str(Path(str(value)).expanduser().resolve())


def config_differences(old: dict, new: dict, where: str = "") -> list[str]:
    """``key: <old> in the campaign, <new> here`` for every entry that differs between two
    config dicts."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        name = f"{where}.{key}" if where else str(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, name)
        elif a != b:
            out.append(f"{name}: {a!r} in the campaign, {b!r} here")
    return out


def run_campaign(cfg: ALConfig, log=None, stages=None) -> dict:
    """Run (or continue) a campaign; refuses an output directory made by a different config."""
    from ..config import to_dict

    cfg = absolute_paths(cfg)
    existing = CampaignLayout(cfg.output).config
    if existing.exists():
        old = load_al_config(existing)
        old.output = cfg.output
        if to_dict(old) != to_dict(cfg):
            diff = config_differences(to_dict(old), to_dict(cfg))
            shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
            raise ValueError(f"{cfg.output} holds a campaign with a different config ({shown}); "
                             f"resume it with `ubmd al resume {cfg.output}` (to change settings "
                             f"of a campaign, edit {existing} and resume) or choose another "
                             "output directory")
    return Campaign(cfg, log, stages).run()


def resume_campaign(output: str | Path, log=None, stages=None) -> dict:
    """Continue the campaign in ``output`` with its saved config."""
    path = CampaignLayout(output).config
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {output} is not a campaign directory")
    cfg = load_al_config(path)
    cfg.output = str(output)
    return Campaign(cfg, log, stages).run()
