"""Live progress of a campaign while a round runs: which stage, labels done and failed, training
epochs per ensemble member (with the last validation errors), walker steps, temperatures and
stops. Read from the files the stages write as they go (labels, heartbeats of training members
and walkers: :mod:`ubmd.progress`), so it works the same for local worker processes and Dask
workers, and costs the stages nothing but a small file a second.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from .. import progress as P
from ..io import read_json
from ..md.task import PROGRESS, SUMMARY
from .layout import CampaignLayout, RoundLayout

TRAIN_PROGRESS = ".progress"  # in a round's train/: one heartbeat per member


def _k(n: float) -> str:
    """1234 -> 1.2k."""
    return f"{n / 1000:.1f}k" if n >= 10_000 else f"{int(n)}"


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class CampaignProgress:
    """The status text of the stage that runs now (:meth:`describe`), and the display that
    shows it (:meth:`monitor`). The campaign calls :meth:`stage` around each stage."""

    def __init__(self, layout: CampaignLayout, enabled: bool = True, poll_s: float = 1.0,
                 interval_s: float = 60.0, n_walkers: int | None = None):
        self.layout = layout
        self.n_walkers = n_walkers
        self.enabled = enabled
        self.poll_s = poll_s
        self.interval_s = interval_s  # between status lines when stderr is not a terminal
        self.round: RoundLayout | None = None
        self.name: str | None = None
        self.started = time.monotonic()

    def stage(self, rl: RoundLayout, name: str | None) -> None:
        """Stage ``name`` of round ``rl`` starts (None: it ended)."""
        self.round, self.name, self.started = rl, name, time.monotonic()

    def epoch_callback(self, train_dir: str | Path) -> P.EpochHeartbeat:
        """The training progress callback of a round (heartbeats in ``train/.progress``)."""
        directory = Path(train_dir) / TRAIN_PROGRESS
        shutil.rmtree(directory, ignore_errors=True)  # an earlier, interrupted training's
        return P.EpochHeartbeat(directory)

    def monitor(self):
        """A context manager that shows :meth:`describe` while it is open (nothing when
        disabled)."""
        if not self.enabled:
            return contextlib.nullcontext()
        handler = P.status_handler()
        status = P.StatusLine(handler.stream if handler else None, self.interval_s)
        return P.Monitor(self.describe, self.poll_s, status)

    # -------------------------------------------------------------------- the status text
    def describe(self) -> str:
        rl, name = self.round, self.name
        if rl is None or name is None:
            return ""
        detail = getattr(self, f"_{name}", lambda _: "")(rl)
        return f"round {rl.index} {name}" + (f": {detail}" if detail else "") + \
            f" [{_elapsed(time.monotonic() - self.started)}]"

    @staticmethod
    def _label(rl: RoundLayout) -> str:
        n = rl.info("propose").get("n")
        if not rl.labels_dir.exists():
            return ""
        names = [p.name for p in rl.labels_dir.iterdir()]
        done = sum(1 for x in names if x.endswith(".extxyz"))
        failed = sum(1 for x in names if x.endswith(".failed.json"))
        return f"{done}/{n if n is not None else '?'} labelled, {failed} failed"

    @staticmethod
    def _train(rl: RoundLayout) -> str:
        beats = P.EpochHeartbeat(rl.train_dir / TRAIN_PROGRESS).read()
        if not beats:
            return "preparing"
        parts = []
        for b in beats:
            text = f"member {b.get('member', 0) + 1} epoch {b.get('epoch', 0) + 1}/" \
                   f"{b.get('n_epochs', '?')}" + (" done" if b.get("done") else "")
            if "forces_rmse" in b:
                text += (f" (valid E {1000 * b.get('energy_rmse', float('nan')):.1f} meV/atom, "
                         f"F {b['forces_rmse']:.3f} eV/Å)")
            parts.append(text)
        return "; ".join(parts)

    def _sample(self, rl: RoundLayout) -> str:
        if not rl.walkers_dir.exists():
            return "computing the threshold"
        stops: dict[str, int] = {}
        running = []
        dirs = sorted(rl.walkers_dir.glob("w*"))
        for d in dirs:
            if (d / SUMMARY).exists():
                try:
                    reason = read_json(d / SUMMARY).get("stop_reason", "?")
                except (OSError, ValueError):
                    reason = "?"
                stops[reason] = stops.get(reason, 0) + 1
            else:
                beat = P.read_heartbeat(d / PROGRESS)
                if beat:
                    running.append(beat)
        total = self.n_walkers or len(dirs)
        text = f"{sum(stops.values())}/{total} walkers stopped"
        if stops:
            text += " (" + ", ".join(f"{n} {k}" for k, n in sorted(stops.items())) + ")"
        waiting = total - sum(stops.values()) - len(running)
        if running:
            steps = [b.get("step", 0) for b in running]
            temps = [b.get("temperature") for b in running if b.get("temperature") is not None]
            text += (f"; {len(running)} running at step {_k(min(steps))}"
                     + (f"-{_k(max(steps))}" if max(steps) != min(steps) else "")
                     + f" of {_k(running[0].get('max_steps', 0))}")
            if temps:
                text += f", T {min(temps):.0f}-{max(temps):.0f} K"
        if waiting > 0:
            text += f"; {waiting} starting or queued"
        return text
