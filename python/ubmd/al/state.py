"""On-disk state of a campaign: which stage of which round is finished (crash-safe JSON).

Every stage first writes its outputs (each atomically: temporary file + rename), then marks
itself done in ``round_NNN/state.json``; a resumed campaign skips every marked stage and redoes
the first unmarked one (labels are checkpointed one by one inside the label stage).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .walkers import write_json_atomic

STAGES = ("propose", "label", "train", "sample", "select")


def round_dir(output: str | Path, r: int) -> Path:
    return Path(output) / f"round_{r:03d}"


class RoundState:
    """``state.json`` of one round: ``{"stages": {stage: {"done": true, ...info}}}``."""

    def __init__(self, rdir: str | Path):
        self.dir = Path(rdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "state.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"stages": {}}

    def done(self, stage: str) -> bool:
        return bool(self.data["stages"].get(stage, {}).get("done"))

    def info(self, stage: str) -> dict:
        return dict(self.data["stages"].get(stage, {}))

    def mark(self, stage: str, **info) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        self.data["stages"][stage] = {"done": True, "finished_at": time.time(), **info}
        write_json_atomic(self.data, self.path)
