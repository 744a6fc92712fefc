"""The active-learning campaign (docs/method.md): the driver loop over rounds and stages, the
lock on the campaign directory, resume, and the check that a directory is continued with the
config it was started with.

A round runs the stages of :mod:`ubmd.al.stages` that its ``state.json`` does not mark done
(propose, label, train; then, unless the label budget or the round limit is reached, sample and
select), writes its summary and log line (:mod:`ubmd.al.summary`), and ``campaign.json``. A
killed campaign resumes from the first unmarked stage (``ubmd al resume``), losing no label.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, Mapping

from .. import progress as P
from ..errors import InputError, MissingImportError, RunStopped
from .config import ALConfig, al_config_from_dict, load_al_config, save_al_config
from .layout import CampaignLayout, RoundLayout
from .progress import CampaignProgress
from .stages import STAGE_FUNCTIONS, StageContext
from .summary import campaign_record, format_log_line, round_summary

FIRST_STAGES = ("propose", "label", "train")  # every round
LAST_STAGES = ("sample", "select")  # every round but the last
logger = logging.getLogger(__name__)


class Campaign:
    """Run or resume the campaign described by ``cfg`` in ``cfg.output``.

    Args:
        cfg: the campaign's config (:func:`ubmd.al.load_al_config`,
            :func:`ubmd.al.al_config_from_dict`).
        log: where the round lines go (default: the ``ubmd.al`` logger at INFO level, which
            :meth:`run` sends to stderr when logging is not configured); every line is also
            appended to ``log.txt``.
        stages: stage functions replacing the built-in ones by name, the hooks to customise a
            round: ``propose``, ``label``, ``train``, ``sample``, ``select``, each
            ``fn(ctx: StageContext, rl: RoundLayout) -> None``. A stage reads its inputs and
            writes its outputs through ``rl`` (:class:`ubmd.al.layout.RoundLayout`: e.g. a label
            stage reads ``rl.to_label_frames()`` and writes ``rl.labelled`` and ``rl.dataset``),
            and ends with ``rl.mark(stage, **numbers)``; the built-in functions
            (:mod:`ubmd.al.stages`) may be called from a replacement (e.g. to log, then run
            :func:`ubmd.al.stages.label`).
        progress: live progress (labels done/failed, training epochs, walker steps and stops)
            while a round runs: a status line on a terminal, a log line a minute otherwise
            (a number: seconds between those lines; :class:`ubmd.al.progress.CampaignProgress`);
            False: none.
    """

    def __init__(self, cfg: ALConfig, log: Callable[[str], None] | None = None,
                 stages: Mapping[str, Callable] | None = None, progress: bool | float = True):
        self.cfg = absolute_paths(cfg)
        self.layout = CampaignLayout(cfg.output)
        unknown = set(stages or {}) - set(STAGE_FUNCTIONS)
        if unknown:
            raise ValueError(f"unknown stage(s) {sorted(unknown)}; stages: "
                             f"{', '.join(STAGE_FUNCTIONS)}")
        self.stages = {**STAGE_FUNCTIONS, **(stages or {})}
        self._print = log or logger.info
        interval = 60.0 if isinstance(progress, bool) else float(progress)
        self.progress = CampaignProgress(self.layout, enabled=progress is not False,
                                         interval_s=interval, n_walkers=cfg.walkers.n_walkers)

    def log(self, line: str) -> None:
        self._print(line)
        self.layout.append_log(line)

    def run(self) -> dict:
        """Run the rounds that are not finished; returns ``campaign.json`` (``finished``,
        ``n_rounds``, ``labels_used``, ``rounds``: every round's summary)."""
        check_inputs(self.cfg)  # before anything is written
        self.layout.root.mkdir(parents=True, exist_ok=True)
        lock = acquire_campaign_lock(self.layout.root)
        save_al_config(self.cfg, self.layout.config)
        ctx = StageContext(self.cfg, self.layout, self.log, progress=self.progress)
        output = contextlib.nullcontext() if P.has_output() else _stderr_logging()
        try:
            with output, self.progress.monitor():
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
        """Run the round's unfinished stages; True when it is the campaign's last round. A round
        that was finished before (a resumed or re-run campaign) is not logged again."""
        ran = False
        for stage in FIRST_STAGES:
            if not rl.done(stage):
                self.run_stage(ctx, rl, stage)
                ran = True
        last = self.is_last(rl.index)
        if not last:
            for stage in LAST_STAGES:
                if not rl.done(stage):
                    self.run_stage(ctx, rl, stage)
                    ran = True
        if not ran and rl.summary_file.exists() and rl.read_summary().get("last") == last:
            return last
        summary = round_summary(self.cfg, self.layout, rl, last)
        rl.write_summary(summary)
        self.log(format_log_line(summary))
        return last

    def run_stage(self, ctx: StageContext, rl: RoundLayout, stage: str) -> None:
        """Run one stage of round ``rl`` (the built-in one, or its replacement)."""
        self.progress.stage(rl, stage)
        try:
            self.stages[stage](ctx, rl)
        finally:
            self.progress.stage(rl, None)

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
        raise RunStopped(f"{path.parent} is in use by {holder}: one campaign directory takes "
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


@contextlib.contextmanager
def _stderr_logging():
    """Progress lines on stderr for the duration of a run, when nobody configured logging (a
    driver script); the handler is removed afterwards."""
    handler = P.log_to_stderr()
    try:
        yield
    finally:
        P.stop_logging_to_stderr(handler)


def check_inputs(cfg: ALConfig) -> None:
    """Everything a campaign needs before its directory is created: the start structures
    (readable, frames ``initial.index`` present, at least 2 atoms, periodic for NPT, the atoms
    ``dihedrals`` name), ``initial.data``, the calculator's import (module or file), the LAMMPS
    plugin and executable for ``walkers.engine: lammps``, and Dask for ``executor.kind: dask``.
    Raises FileNotFoundError/ValueError/ImportError naming the key."""
    from ..config import require_files
    from ..labelling.runner import check_importable
    from ..md.starts import check_walker_starts
    from .initial import check_dihedrals, read_start_frames

    require_files(cfg.initial.structures, "initial.structures")
    if cfg.initial.data:
        require_files(cfg.initial.data, "initial.data")
    starts = read_start_frames(cfg.initial.structures, cfg.initial.index)
    check_walker_starts(starts, cfg.walkers.ensemble, source="initial.structures",
                        option="walkers.ensemble")
    check_dihedrals(starts, cfg.dihedrals)
    from ..labelling import normalise_spec

    check_importable(normalise_spec(cfg.reference.calculator), "reference.calculator")
    if cfg.walkers.engine == "lammps":
        from ..md.engines import check_lammps

        check_lammps(cfg.walkers.lammps, "walkers.lammps")
    if cfg.executor.kind == "local":  # (Dask workers may have the GPU this machine lacks)
        from ..config import check_device

        check_device(cfg.training.device, "training.device")
    if cfg.executor.kind == "dask":
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            raise MissingImportError("executor.kind: dask needs dask.distributed (pip install "
                              "'ubmd[cluster]')")


def run_campaign(cfg: ALConfig, log=None, stages=None, progress: bool | float = True) -> dict:
    """Run (or continue) a campaign; refuses an output directory made by a different config
    (unless that campaign never finished a stage: then this config replaces it)."""
    from ..config import to_dict

    cfg = absolute_paths(cfg)
    layout = CampaignLayout(cfg.output)
    existing = layout.config
    if existing.exists() and layout.started():
        old = load_al_config(existing)
        old.output = cfg.output
        # where the Dask scheduler runs is not part of a campaign (a new cluster, a new address)
        old.executor.address = cfg.executor.address
        if to_dict(old) != to_dict(cfg):
            diff = config_differences(to_dict(old), to_dict(cfg))
            shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
            raise ValueError(f"{cfg.output} holds a campaign with a different config ({shown}); "
                             f"resume it with `ubmd al resume {cfg.output}` (to change settings "
                             f"of a campaign, edit {existing} and resume) or choose another "
                             "output directory")
    return Campaign(cfg, log, stages, progress).run()


def resume_campaign(output: str | Path, log=None, stages=None, progress: bool | float = True,
                    label_budget: int | None = None, max_rounds: int | None = None) -> dict:
    """Continue the campaign in ``output`` with its saved config.

    ``label_budget`` / ``max_rounds``: extend (or cut short) the campaign: the saved config
    takes the new value and the log says so. A campaign that finished at its old budget goes
    on from its last round (that round's model samples and selects, as any round's does);
    nothing done before is redone."""
    from ..config import to_dict

    layout = CampaignLayout(output)
    if not layout.config.exists():
        raise FileNotFoundError(f"{layout.config} not found: {output} is not a campaign directory")
    cfg = load_al_config(layout.config)
    cfg.output = str(output)
    new = {k: v for k, v in (("label_budget", label_budget), ("max_rounds", max_rounds))
           if v is not None and v != getattr(cfg, k)}
    if new:
        changed = al_config_from_dict({**to_dict(cfg), **new})  # validates the new values
        done = layout.finished_rounds()
        used = layout.labels_used(done[-1].index) if done else 0
        if changed.label_budget < used:
            raise InputError(f"label_budget {changed.label_budget} is below the {used} labels "
                             f"the campaign in {output} has used already")
        lock = acquire_campaign_lock(layout.root)  # not while another driver runs it
        try:
            save_al_config(absolute_paths(changed), layout.config)
        finally:
            lock.close()
        layout.append_log("resumed with " + ", ".join(f"{k} {getattr(cfg, k)} -> {v}"
                                                      for k, v in new.items()))
        cfg = changed
    return Campaign(cfg, log, stages, progress).run()
