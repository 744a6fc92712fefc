"""Checkpointed reference labelling: every label is on disk the moment it arrives (what an AL
round's label stage runs).

``labels/NNNNN.extxyz`` holds the labelled structure number NNNNN of the stage's input list,
``labels/NNNNN.failed.json`` a failed job (reason, kind, attempts, seconds). A resumed stage labels
the indices that have neither file, and retries the failed jobs of kind ``error``, so no label that
was paid for is computed twice while a fixed calculator gets another chance.

Failure kinds (:class:`ubmd.labelling.LabelFailure`, recorded as ``kind`` in the file):

* ``rejected``: the calculator answered with non-finite energies, forces or stresses: the
  structure itself is unusable, a retry would give the same answer; never retried (delete the
  ``.failed.json`` file to force a retry);
* ``error``, ``crashed``, ``timeout``: the calculator raised, its worker died, the job ran too
  long: retried by the next run of the stage (``ubmd al resume``). A file without a ``kind``
  (written by an older ubmd) is classified as it was then, by its reason.

Labels whose forces exceed ``reference.max_force`` are not failures: they are kept on disk and
dropped by :func:`collect_labels` with the current ``max_force``, so raising it takes effect on
resume without relabelling.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

from ase import Atoms

from ..data import read_structures, write_structures
from ..errors import RunStopped
from ..io import write_json_atomic
from .runner import POOL_INDEX, LabelFailure, filter_by_max_force, label_structures


#: how files written before failure kinds existed were classified (their reason's prefix)
_LEGACY_REJECTED_PREFIX = "non-finite "


def read_failure(path: Path) -> dict:
    """A ``.failed.json`` record with its ``kind`` (a :class:`LabelFailure` value) and
    ``attempts``. A file written before kinds existed gets the kind its reason had then
    (non-finite results: ``rejected``; anything else: ``error``)."""
    rec = json.loads(Path(path).read_text())
    if "kind" not in rec:
        legacy = str(rec.get("reason") or "").startswith(_LEGACY_REJECTED_PREFIX)
        rec["kind"] = (LabelFailure.REJECTED if legacy else LabelFailure.ERROR).value
    rec.setdefault("attempts", 1)
    return rec


def retryable(rec: dict) -> bool:
    """Whether a failure record is worth computing again (:attr:`LabelFailure.retryable`)."""
    return LabelFailure(rec["kind"]).retryable


def _done_indices(lab_dir: Path, retry_failed: bool) -> set[int]:
    """Indices with a label, or with a failure that is not to be retried."""
    done = set()
    for p in lab_dir.iterdir():
        head = p.name.split(".")[0]
        if not head.isdigit():
            continue
        if p.name.endswith(".extxyz"):
            done.add(int(head))
        elif p.name.endswith(".failed.json") and not (retry_failed and retryable(read_failure(p))):
            done.add(int(head))
    return done


def label_checkpointed(structures: Sequence[Atoms], lab_dir: str | Path, ref_cfg,
                       executor=None, retry_failed: bool = True) -> dict:
    """Label ``structures`` (skipping those already on disk); returns a summary dict.

    ``ref_cfg`` is a :class:`ubmd.labelling.settings.ReferenceConfig` (calculator, n_workers, timeout_s,
    stress); ``executor`` an optional :class:`ubmd.executors.Executor` (Dask). Failed jobs are
    recorded, never raised; with ``retry_failed`` the recorded retryable failures are computed
    again.
    """
    lab_dir = Path(lab_dir)
    lab_dir.mkdir(parents=True, exist_ok=True)
    done = _done_indices(lab_dir, retry_failed)
    todo = [i for i in range(len(structures)) if i not in done]
    n_retried = sum(1 for i in todo if (lab_dir / f"{i:05d}.failed.json").exists())
    props = ("energy", "forces", "stress") if ref_cfg.stress else ("energy", "forces")

    def checkpoint(outcome) -> None:
        index = todo[outcome.index]
        failed = lab_dir / f"{index:05d}.failed.json"
        if outcome.ok:
            atoms = outcome.atoms
            atoms.info[POOL_INDEX] = index  # index in this stage's input, stable over resumes
            tmp = lab_dir / f"{index:05d}.extxyz.tmp"
            write_structures(tmp, [atoms])
            os.replace(tmp, lab_dir / f"{index:05d}.extxyz")
            failed.unlink(missing_ok=True)  # an earlier attempt's failure
        else:
            attempts = read_failure(failed)["attempts"] + 1 if failed.exists() else 1
            write_json_atomic({"index": index, "reason": outcome.reason,
                               "kind": outcome.kind.value, "attempts": attempts,
                               "elapsed_s": outcome.elapsed}, failed)

    t0 = time.perf_counter()
    if todo:
        label_structures([structures[i] for i in todo], ref_cfg.calculator,
                         n_workers=ref_cfg.n_workers, timeout=ref_cfg.timeout_s,
                         properties=props, callback=checkpoint, executor=executor)
    return {"n_requested": len(structures), "n_computed_now": len(todo), "n_retried": n_retried,
            "wall_s": time.perf_counter() - t0}


def collect_labels(lab_dir: str | Path, n: int, max_force: float) -> dict:
    """Labelled structures (input order), failures and force-filter drops of a label stage.

    ``labelled``: every structure with a label (before the force filter); ``kept``: those that
    pass it; ``failures``: the failure records (with ``kind``); ``dropped``: force-filter drops.
    """
    lab_dir = Path(lab_dir)
    labelled, failures = [], []
    ref_time = 0.0
    for i in range(n):
        ok, bad = lab_dir / f"{i:05d}.extxyz", lab_dir / f"{i:05d}.failed.json"
        if ok.exists():
            atoms = read_structures(ok)[0]
            ref_time += float(atoms.info.get("label_time_s", 0.0))
            labelled.append(atoms)
        elif bad.exists():
            rec = read_failure(bad)
            ref_time += float(rec.get("elapsed_s", 0.0))
            failures.append(rec)
        else:
            raise RunStopped(f"label {i} missing in {lab_dir}: the label stage did not finish")
    kept, dropped = filter_by_max_force(labelled, max_force)
    return {"labelled": labelled, "kept": kept, "failures": failures, "dropped": dropped,
            "reference_s": ref_time}
