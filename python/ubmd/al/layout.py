"""Where everything of a campaign lives on disk, and which stage of which round is finished.

One object owns every artefact path of a round (:class:`RoundLayout`) and one the campaign's own
files (:class:`CampaignLayout`); nothing else in the package spells a file name of a campaign.

::

    CAMPAIGN/
      config.yaml  campaign.json  log.txt  .campaign.lock
      round_NNN/
        state.json          stage marks: {"stages": {stage: {"done": true, ...info}}}
        to_label.extxyz     propose: structures to label
        labels/             label: NNNNN.extxyz (one label each) or NNNNN.failed.json
        label_failures.json labelled.extxyz dataset.extxyz
        train/              train: config.yaml members.pt model.pt calibration.json ...
        split.json          train: the train/valid/test indices into dataset.extxyz
        walkers/            sample: threshold.json, wNN/ (one MD run each, ubmd.md.task)
        pool.extxyz         sample: every walker's candidate frames
        selected.extxyz     select: the frames to label next round
        summary.json        the round's numbers

Every stage first writes its outputs (each atomically: temporary file + rename, ubmd.io), then
marks itself done in ``state.json``; a resumed campaign skips every marked stage and redoes the
first unmarked one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..data import Split, split_indices
from ..errors import RunStopped
from ..io import RunFiles, read_frames, read_json, write_frames_atomic, write_json_atomic
from ..md.task import SUMMARY as WALKER_SUMMARY
from ..md.task import TRACE as WALKER_TRACE

STAGES = ("propose", "label", "train", "sample", "select")


def _path(name: str) -> property:
    """A path of the round directory (a read-only property)."""
    return property(lambda self: self.dir / name, doc=f"``round_NNN/{name}``")


class RoundLayout:
    """The files of round ``index`` of the campaign in ``root``, and its stage marks."""

    def __init__(self, root: str | Path, index: int):
        self.index = int(index)
        self.dir = Path(root) / f"round_{self.index:03d}"
        self._state: dict | None = None

    # ---------------------------------------------------------------- artefact paths
    to_label = _path("to_label.extxyz")  # propose
    labels_dir = _path("labels")  # label: NNNNN.extxyz / NNNNN.failed.json
    label_failures = _path("label_failures.json")
    labelled = _path("labelled.extxyz")
    dataset = _path("dataset.extxyz")
    train_dir = _path("train")  # a training run directory (ubmd.io.RunFiles)
    split_file = _path("split.json")
    walkers_dir = _path("walkers")  # threshold.json, wNN/ (ubmd.md.task)
    pool = _path("pool.extxyz")
    selected = _path("selected.extxyz")
    summary_file = _path("summary.json")
    state_file = _path("state.json")

    @property
    def train_files(self) -> RunFiles:
        """The round's training run directory (``train/``: config, members, model file ...)."""
        return RunFiles(self.train_dir)

    @property
    def model_file(self) -> Path:
        return self.train_files.model

    def walker_dir(self, k: int) -> Path:
        return self.walkers_dir / f"w{k:02d}"

    # ---------------------------------------------------------------- reads and writes
    read_frames = staticmethod(read_frames)  # extxyz; a missing or empty file holds no frame

    @staticmethod
    def write_frames(frames, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_frames_atomic(frames, path)

    def to_label_frames(self) -> list:
        return read_frames(self.to_label)

    def labelled_frames(self) -> list:
        return read_frames(self.labelled)

    def dataset_frames(self) -> list:
        return read_frames(self.dataset)

    def pool_frames(self) -> list:
        return read_frames(self.pool)

    def selected_frames(self) -> list:
        return read_frames(self.selected)

    def walker_traces(self) -> list[Path]:
        return sorted(self.walkers_dir.glob(f"w*/{WALKER_TRACE}"))

    def walker_summaries(self) -> list[Path]:
        return sorted(self.walkers_dir.glob(f"w*/{WALKER_SUMMARY}"))

    def write_split(self, split: Split, n: int) -> None:
        write_json_atomic({"n": n, "train": split.train, "valid": split.valid,
                           "test": split.test}, self.split_file)

    def read_split(self, n: int) -> Split | None:
        """The split the round's model was trained with (``split.json``); for a round trained
        before that file existed, recomputed from the data settings in ``train/config.yaml``
        (and saved). None when neither exists."""
        if self.split_file.exists():
            rec = read_json(self.split_file)
            if rec["n"] != n:
                raise RunStopped(f"{self.split_file} splits {rec['n']} structures but "
                                   f"{self.dataset} holds {n}")
            return Split(train=rec["train"], valid=rec["valid"], test=rec["test"])
        split = self.recorded_split(n)
        if split is not None:
            self.write_split(split, n)
        return split

    def recorded_split(self, n: int) -> Split | None:
        """The split of ``n`` structures under the data settings the training recorded in
        ``train/config.yaml`` (the split it used), None without that file."""
        import yaml

        path = self.train_files.config
        if not path.exists():
            return None
        d = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
        return split_indices(n, d.get("valid_fraction"), d.get("test_fraction", 0),
                             d.get("split_seed", 0))

    def read_summary(self) -> dict:
        return read_json(self.summary_file)

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(summary, self.summary_file)

    # ---------------------------------------------------------------- stage marks
    @property
    def state(self) -> dict:
        if self._state is None:
            self._state = (read_json(self.state_file) if self.state_file.exists()
                           else {"stages": {}})
        return self._state

    def done(self, stage: str) -> bool:
        return bool(self.state["stages"].get(stage, {}).get("done"))

    def info(self, stage: str) -> dict:
        return dict(self.state["stages"].get(stage, {}))

    def mark(self, stage: str, **info) -> None:
        """Mark ``stage`` finished, with ``info`` (JSON-able) kept for the summary."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state["stages"][stage] = {"done": True, "finished_at": time.time(), **info}
        write_json_atomic(self.state, self.state_file)


class CampaignLayout:
    """The campaign directory ``root``: its own files and its rounds."""

    CONFIG = "config.yaml"
    LOCK = ".campaign.lock"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / self.CONFIG

    @property
    def campaign_file(self) -> Path:
        return self.root / "campaign.json"

    @property
    def log_file(self) -> Path:
        return self.root / "log.txt"

    @property
    def lock_file(self) -> Path:
        return self.root / self.LOCK

    def round(self, r: int) -> RoundLayout:
        return RoundLayout(self.root, r)

    def finished_rounds(self) -> list[RoundLayout]:
        """Rounds 0, 1, ... that have a summary (stops at the first without one)."""
        out = []
        while self.round(len(out)).summary_file.exists():
            out.append(self.round(len(out)))
        return out

    def started(self) -> bool:
        """Whether any stage of round 0 is marked done (a directory whose campaign stopped
        before that, e.g. on a missing start file, holds nothing worth keeping)."""
        return bool(self.round(0).state["stages"])

    def labels_used(self, upto: int) -> int:
        """Reference calculations requested in rounds 0..upto."""
        return sum(self.round(r).info("propose").get("n", 0) for r in range(upto + 1))

    def append_log(self, line: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a") as fh:
            fh.write(line + "\n")

    def write_campaign(self, record: dict) -> None:
        write_json_atomic(record, self.campaign_file)

    def read_campaign(self) -> dict:
        return json.loads(self.campaign_file.read_text())
