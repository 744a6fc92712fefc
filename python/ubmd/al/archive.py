"""A campaign directory read back (also while it runs), and its compact archive.

A campaign directory (:mod:`.layout`) holds every model, pool and walker file of every round:
gigabytes, not something to keep. What an analysis needs later fits in a few 100 kB, the
*archive* (:func:`write_archive`)::

    ARCHIVE/
      config.yaml           the campaign's config
      dataset.extxyz.gz     the last round's data set (round k's data set: its first n_dataset frames)
      rounds.json           per round: round, n_dataset, labels_used
      traces.npz            traced walker values {round: {walker: array}} (keys r<round>_w<walker>)

Reading a campaign directory: :func:`load_rounds` (round summaries), :func:`campaign_finished`,
:func:`walker_traces` (a value the walkers traced, per round and walker), :func:`walker_md_costs`.
Reading either: :func:`read_rounds`, :func:`pick_round`, :func:`archived_traces` (the directory
while it exists, else the archive), :func:`campaign_dataset`.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from ..analysis.readers import read_loop_time, read_thermo_log
from ..md.lammps_engine import LOG as WALKER_LOG
from ..md.task import TRACE as WALKER_TRACE
from .layout import CampaignLayout

ROUNDS = "rounds.json"
TRACES = "traces.npz"
DATASET = "dataset.extxyz.gz"


# ---------------------------------------------------------------------------- campaign directory
def load_rounds(out: str | Path) -> list[dict]:
    """The ``summary.json`` of every finished round of the campaign in ``out``, in order."""
    return [rl.read_summary() for rl in CampaignLayout(out).finished_rounds()]


def campaign_finished(out: str | Path) -> bool:
    """Whether ``campaign.json`` says the campaign finished (False without it)."""
    layout = CampaignLayout(out)
    return bool(layout.read_campaign().get("finished")) if layout.campaign_file.exists() else False


def _walker_values(wdir: Path, key: str, log_column: str | None) -> np.ndarray | None:
    trace = wdir / WALKER_TRACE
    if trace.exists():
        with np.load(trace) as d:
            if key in d.files and len(d[key]) and np.isfinite(d[key]).any():
                return np.asarray(d[key], dtype=float)
    log = wdir / WALKER_LOG
    if log_column and log.exists():
        try:
            return np.asarray(read_thermo_log(log).get(log_column), dtype=float)
        except (KeyError, ValueError):
            return None
    return None


def walker_traces(out: str | Path, key: str, rounds: list[dict] | None = None,
                  log_column: str | None = None) -> dict[int, dict[int, np.ndarray]]:
    """``{round: {walker: values}}`` of the array ``key`` of the walkers' ``trace.npz`` (every
    ``walkers.log_every`` steps: ``cvs`` [n, 2], ``volume``, ``uncertainty`` ...; the AL loop's
    finest record), for ``rounds`` (summaries; default: every finished round). A walker without
    finite values of ``key`` falls back to the column ``log_column`` of its LAMMPS log, if given;
    walkers and rounds without values are left out."""
    layout = CampaignLayout(out)
    out_values: dict[int, dict[int, np.ndarray]] = {}
    for s in load_rounds(out) if rounds is None else rounds:
        walkers = {}
        for wdir in sorted(layout.round(s["round"]).walkers_dir.glob("w*")):
            v = _walker_values(wdir, key, log_column)
            if v is not None and len(v):
                walkers[int(wdir.name[1:])] = v
        if walkers:
            out_values[int(s["round"])] = walkers
    return out_values


def walker_md_costs(out: str | Path, rounds: list[dict], md_steps: int) -> dict:
    """MD cost of the walkers of ``rounds`` (summaries) of the campaign in ``out``: summed walker
    wall time (``md_walker_wall_s``), and per MD step (``md_steps`` in all) with start-up
    (``md_wall_ms_per_step``) and without it (``md_loop_ms_per_step``: the LAMMPS loop time of
    the walkers that ended normally; None without LAMMPS walkers)."""
    layout = CampaignLayout(out)
    md_wall = float(sum(w.get("wall_s") or 0.0 for s in rounds for w in (s.get("walkers") or [])))
    loops = [lt for s in rounds
             for lt in (read_loop_time(wd / WALKER_LOG)
                        for wd in sorted(layout.round(s["round"]).walkers_dir.glob("w*")))
             if lt and lt[1] > 0]
    return {"md_walker_wall_s": md_wall,
            "md_wall_ms_per_step": 1000 * md_wall / md_steps if md_steps else None,
            "md_loop_ms_per_step": 1000 * sum(t for t, _ in loops) / sum(n for _, n in loops)
            if loops else None}


# ---------------------------------------------------------------------------- archive
def save_traces(path: str | Path, traces: dict, dtype=np.float32) -> None:
    """``{round: {walker: array}}`` as a compressed npz (keys ``r<round>_w<walker>``)."""
    arrays = {f"r{r}_w{w}": np.asarray(a, dtype=dtype) for r, ws in traces.items()
              for w, a in ws.items()}
    np.savez_compressed(path, **arrays)


def load_traces(path: str | Path) -> dict[int, dict[int, np.ndarray]]:
    """Inverse of :func:`save_traces` (float64 arrays, rounds and walkers in order)."""
    out: dict = {}
    with np.load(path) as d:
        for key in d.files:
            r, w = (int(x[1:]) for x in key.split("_"))
            out.setdefault(r, {})[w] = np.asarray(d[key], dtype=float)
    return {r: dict(sorted(ws.items())) for r, ws in sorted(out.items())}


def write_archive(out: str | Path, dest: str | Path, traces: dict, dtype=np.float32) -> None:
    """Archive the campaign in ``out`` into ``dest`` (module docstring): its config, the last
    round's data set, the data-set size per round and the walker values ``traces``
    (``{round: {walker: array}}``, e.g. from :func:`walker_traces`). Nothing without a finished
    round."""
    out, dest = Path(out), Path(dest)
    layout = CampaignLayout(out)
    rounds = load_rounds(out)
    if not rounds:
        return
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(layout.config, dest / CampaignLayout.CONFIG)
    src = layout.round(rounds[-1]["round"]).dataset
    with open(src, "rb") as f, gzip.GzipFile(dest / DATASET, "wb", mtime=0) as g:
        shutil.copyfileobj(f, g)
    (dest / ROUNDS).write_text(json.dumps(
        [{"round": s["round"], "n_dataset": s["n_dataset"], "labels_used": s["labels_used"]}
         for s in rounds], indent=0))
    save_traces(dest / TRACES, traces, dtype)


def is_archive(path: str | Path) -> bool:
    """Whether ``path`` is a campaign archive (:func:`write_archive`), not a campaign directory."""
    path = Path(path)
    return (path / ROUNDS).exists() and not CampaignLayout(path).round(0).dir.exists()


def read_rounds(path: str | Path) -> list[dict]:
    """The round summaries of a campaign directory, or ``rounds.json`` of an archive."""
    if is_archive(path):
        return json.loads((Path(path) / ROUNDS).read_text())
    return load_rounds(path)


def pick_round(path: str | Path, labels: int) -> dict:
    """The round (of :func:`read_rounds`) with the largest data set of at most ``labels``
    structures; ValueError when there is none."""
    rounds = [s for s in read_rounds(path) if s["n_dataset"] <= labels]
    if not rounds:
        raise ValueError(f"{path}: no round with at most {labels} labels")
    return rounds[-1]


def archived_dataset(archive: str | Path, n: int | None = None) -> list:
    """The first ``n`` frames (all: None) of an archived campaign's data set."""
    from ase.io import read

    with gzip.open(Path(archive) / DATASET, "rt") as f:
        frames = read(f, ":", format="extxyz")
    return frames if n is None else frames[:n]


def archived_traces(out: str | Path, archive: str | Path,
                    from_run_dir: Callable[[Path, list[dict]], dict]) -> dict:
    """``from_run_dir(out, rounds)`` while the campaign directory ``out`` has finished rounds,
    else the archive's traces ({} when neither exists)."""
    rounds = load_rounds(out)
    if rounds:
        return from_run_dir(Path(out), rounds)
    path = Path(archive) / TRACES
    return load_traces(path) if path.exists() else {}


def campaign_dataset(out: str | Path, archive: str | Path) -> list:
    """The last round's data set of a campaign, from its directory, else from its archive ([]
    when neither exists)."""
    rounds = load_rounds(out)
    if rounds:
        return CampaignLayout(out).round(rounds[-1]["round"]).dataset_frames()
    return archived_dataset(archive) if (Path(archive) / DATASET).exists() else []


def unpack_round(archive: str | Path, r: int, dest: str | Path) -> Path:
    """The files of an archived campaign that continuing it from round ``r`` needs, as in a
    campaign directory ``dest``: round r-1's ``dataset.extxyz``, round r's ``labelled.extxyz``
    (the frames round r added) and ``summary.json``. ValueError when the archive lacks the
    rounds."""
    rounds = {s["round"]: s for s in read_rounds(archive)}
    if r not in rounds or r - 1 not in rounds:
        raise ValueError(f"the archive {archive} has no rounds {r - 1} and {r}")
    lo, hi = rounds[r - 1]["n_dataset"], rounds[r]["n_dataset"]
    frames = archived_dataset(archive, hi)
    layout = CampaignLayout(dest)
    before, this = layout.round(r - 1), layout.round(r)
    before.write_frames(frames[:lo], before.dataset)
    this.write_frames(frames[lo:hi], this.labelled)
    this.write_summary({**rounds[r], "n_new_labels": hi - lo})
    return Path(dest)
