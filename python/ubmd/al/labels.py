"""Checkpointed reference labelling: every label is on disk the moment it arrives.

``labels/NNNNN.extxyz`` holds the labelled structure number NNNNN of the stage's input list,
``labels/NNNNN.failed.json`` a failed job (reason, seconds). A resumed stage labels only the
indices that have neither file, so no label that was paid for is computed twice.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

from ase import Atoms

from ..data import read_structures, write_structures
from ..labelling import POOL_INDEX, filter_by_max_force, label_structures
from .walkers import write_json_atomic


def _done_indices(lab_dir: Path) -> set[int]:
    done = set()
    for p in lab_dir.iterdir():
        head = p.name.split(".")[0]
        if head.isdigit() and (p.name.endswith(".extxyz") or p.name.endswith(".failed.json")):
            done.add(int(head))
    return done


def label_checkpointed(structures: Sequence[Atoms], lab_dir: str | Path, ref_cfg,
                       executor=None) -> dict:
    """Label ``structures`` (skipping those already on disk); returns a summary dict.

    ``ref_cfg`` is a :class:`ubmd.al.config.ReferenceConfig`; ``executor`` an optional
    concurrent.futures-like executor (Dask). Failed jobs are recorded, never raised.
    """
    lab_dir = Path(lab_dir)
    lab_dir.mkdir(parents=True, exist_ok=True)
    done = _done_indices(lab_dir)
    todo = [i for i in range(len(structures)) if i not in done]
    props = ("energy", "forces", "stress") if ref_cfg.stress else ("energy", "forces")

    def checkpoint(outcome) -> None:
        index = todo[outcome.index]
        if outcome.ok:
            atoms = outcome.atoms
            atoms.info[POOL_INDEX] = index  # index in this stage's input, stable over resumes
            tmp = lab_dir / f"{index:05d}.extxyz.tmp"
            write_structures(tmp, [atoms])
            os.replace(tmp, lab_dir / f"{index:05d}.extxyz")
        else:
            write_json_atomic({"index": index, "reason": outcome.reason,
                               "elapsed_s": outcome.elapsed}, lab_dir / f"{index:05d}.failed.json")

    t0 = time.perf_counter()
    if todo:
        label_structures([structures[i] for i in todo], ref_cfg.calculator,
                         n_workers=ref_cfg.n_workers, timeout=ref_cfg.timeout_s,
                         properties=props, callback=checkpoint, executor=executor)
    return {"n_requested": len(structures), "n_computed_now": len(todo),
            "wall_s": time.perf_counter() - t0}


def collect_labels(lab_dir: str | Path, n: int, max_force: float) -> dict:
    """Labelled structures (input order), failures and force-filter drops of a label stage."""
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
            rec = json.loads(bad.read_text())
            ref_time += float(rec.get("elapsed_s", 0.0))
            failures.append(rec)
        else:
            raise RuntimeError(f"label {i} missing in {lab_dir}: the label stage did not finish")
    kept, dropped = filter_by_max_force(labelled, max_force)
    return {"kept": kept, "failures": failures, "dropped": dropped, "reference_s": ref_time}
