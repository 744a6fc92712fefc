"""The active-learning campaign (METHOD.md section 7), resumable stage by stage.

Round r (directory ``round_NNN``) has five stages, each finished by a mark in ``state.json``:

1. ``propose``: structures to label -> ``to_label.extxyz`` (round 0: start structures + perturbed
   copies; later rounds: the previous round's selection);
2. ``label``: reference labels, checkpointed one by one (``labels/``), force filter, then
   ``dataset.extxyz`` = previous dataset + new labels; a failed label is recorded
   (``label_failures.json``) and skipped, but when every label of the round failed, or the data
   set would be too small to split, the stage stops with an error and stays unmarked: a resume
   computes the failed labels again (:mod:`ubmd.al.labels` says which);
3. ``train``: train (ensembles too; from scratch, or warm-started from the previous round),
   fit + calibrate the uncertainty on the validation split, export ``train/model.pt``; the
   split's indices go to ``split.json`` (selection reuses them, whatever ``data.*`` says later);
   the campaign ends here once the label budget or the round limit is reached;
4. ``sample``: biased MD walkers run concurrently (``walkers/wNN``; finished walkers are not
   rerun on resume; walkers left unfinished by a process pool that another walker's crash broke
   are rerun at once, one process each) -> candidate ``pool.extxyz``;
5. ``select``: features of the pool, batch selection -> ``selected.extxyz``.

``summary.json`` per round: timings of each stage (reference, training, sampling, selection, s),
errors, calibration, walker stop steps, coverage; ``campaign.json`` lists all rounds; ``log.txt``
has one line per round.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
from ase import Atoms

from ..data import Split, no_labels_message, split_indices, with_standard_labels
from ..workflow import label_keys_from
from .config import ALConfig, load_al_config, save_al_config
from .executors import make_executor
from .initial import check_dihedrals, check_walker_starts, initial_structures, read_starts
from .labels import ERROR as LABEL_ERROR
from .labels import collect_labels, label_checkpointed
from .state import RoundState, round_dir
from .walkers import (CANDIDATES, SUMMARY, TRACE, WalkerTask, read_candidates, run_walker,
                      write_json_atomic)
from .walkers import read_candidates as _read_frames  # extxyz; an empty file holds no frame
from .walkers import write_candidates as _write_frames  # atomic write

CONFIG_NAME = "config.yaml"
SPLIT_NAME = "split.json"  # round_NNN/: the training split, indices into dataset.extxyz


def _as_list(value) -> list:
    """A walker setting (a number or a list assigned to walkers in turn) as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _cyclic(value, k: int) -> float:
    values = _as_list(value)
    return float(values[k % len(values)])


def resolve_engine(cfg: ALConfig) -> str:
    """``ase`` or ``lammps`` (``auto``: lammps when the ubmd plugin and lmp are found)."""
    if cfg.walkers.engine != "auto":
        return cfg.walkers.engine
    from .walkers_lammps import lammps_available

    return "lammps" if lammps_available(cfg.walkers.lammps) else "ase"


class Campaign:
    """Run or resume the campaign described by ``cfg`` in ``cfg.output``."""

    def __init__(self, cfg: ALConfig, log: Callable[[str], None] | None = None):
        self.cfg = absolute_paths(cfg)
        self.out = Path(cfg.output)
        self._log = log or (lambda s: print(s, flush=True))
        self._executor = None

    # ------------------------------------------------------------------ helpers
    def log(self, line: str) -> None:
        self._log(line)
        with open(self.out / "log.txt", "a") as fh:
            fh.write(line + "\n")

    @property
    def executor(self):
        if self._executor is None:
            self._executor = make_executor(self.cfg.executor)
        return self._executor

    def labels_used(self, upto: int) -> int:
        """Reference calculations requested in rounds 0..upto."""
        return sum(RoundState(round_dir(self.out, r)).info("propose").get("n", 0)
                   for r in range(upto + 1))

    def _dataset(self, r: int) -> list[Atoms]:
        return _read_frames(round_dir(self.out, r) / "dataset.extxyz")

    # ------------------------------------------------------------------ driver
    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        lock = acquire_campaign_lock(self.out)
        save_al_config(self.cfg, self.out / CONFIG_NAME)
        try:
            r = 0
            while True:
                finished = self._run_round(r)
                self._write_campaign(r, finished)
                if finished:
                    break
                r += 1
        finally:
            if self._executor is not None:
                self._executor.close()
                self._executor = None
            lock.close()
        return self.read_campaign()

    def _run_round(self, r: int) -> bool:
        st = RoundState(round_dir(self.out, r))
        for stage in ("propose", "label", "train"):
            if not st.done(stage):
                getattr(self, f"_{stage}")(r, st)
        if self._is_last(r, st):
            self._write_summary(r, st, last=True)
            return True
        for stage in ("sample", "select"):
            if not st.done(stage):
                getattr(self, f"_{stage}")(r, st)
        self._write_summary(r, st, last=False)
        return False

    def _is_last(self, r: int, st: RoundState) -> bool:
        return self.labels_used(r) >= self.cfg.label_budget or r + 1 >= self.cfg.max_rounds

    # ------------------------------------------------------------------ stages
    def _propose(self, r: int, st: RoundState) -> None:
        c = self.cfg.initial
        if r == 0:
            starts = _read_start_frames(c.structures, c.index)
            check_walker_starts(starts, self.cfg.walkers.ensemble)
            check_dihedrals(starts, self.cfg.dihedrals)
            frames = initial_structures(starts, c.n_perturbed, c.displacement, c.strain, c.seed)
            if len(frames) > self.cfg.label_budget:
                raise ValueError(f"the initial data ({len(frames)} structures) exceed the label "
                                 f"budget ({self.cfg.label_budget}); raise label_budget or lower "
                                 "initial.n_perturbed")
        else:
            frames = _read_frames(round_dir(self.out, r - 1) / "selected.extxyz")
        for f in frames:
            f.info["al_round"] = r
        _write_frames(frames, st.dir / "to_label.extxyz")
        st.mark("propose", n=len(frames))

    def _label(self, r: int, st: RoundState) -> None:
        frames = _read_frames(st.dir / "to_label.extxyz")
        ex = self.executor.futures_executor() if self.cfg.executor.kind == "dask" else None
        info = label_checkpointed(frames, st.dir / "labels", self.cfg.reference, executor=ex)
        if info["n_retried"]:
            self.log(f"round {r}: retried {info['n_retried']} failed label(s)")
        got = collect_labels(st.dir / "labels", len(frames), self.cfg.reference.max_force)
        dataset = self._dataset(r - 1) if r > 0 else []
        if r == 0 and self.cfg.initial.data:
            # under the data.*_key names; stored (and trained on) under the standard ones
            keys = label_keys_from(self.cfg.data)
            given = read_starts(self.cfg.initial.data)
            dataset = [with_standard_labels(a, keys) for a in given]
            if dataset and all(a.calc.results.get("energy") is None
                               and a.calc.results.get("forces") is None for a in dataset):
                raise ValueError(f"initial.data: {no_labels_message(given, keys)}")
        new = got["kept"]
        failures_file = st.dir / "label_failures.json"
        write_json_atomic({"failures": got["failures"], "dropped": got["dropped"]}, failures_file)
        self._check_labels(r, len(frames), got, len(dataset) + len(new), failures_file)
        _write_frames(new, st.dir / "labelled.extxyz")
        _write_frames(dataset + new, st.dir / "dataset.extxyz")
        st.mark("label", n_requested=len(frames), n_labelled=len(new),
                n_failed=len(got["failures"]), n_dropped=len(got["dropped"]),
                n_dataset=len(dataset) + len(new), reference_s=got["reference_s"],
                wall_s=info["wall_s"])

    def _check_labels(self, r: int, n_requested: int, got: dict, n_dataset: int,
                      failures_file: Path) -> None:
        """Refuse to finish a label stage (so that ``ubmd al resume`` redoes it) when every label
        of the round failed with a retryable error, or when the data set would be too small to
        split into training and validation data. Single failures are recorded and skipped."""
        errors = [f for f in got["failures"] if f.get("kind") == LABEL_ERROR]
        problem = None
        if n_requested and not got["labelled"] and errors:
            problem = f"every label failed ({len(got['failures'])} of {n_requested})"
        else:
            d = self.cfg.data
            try:
                if not split_indices(n_dataset, d.valid_fraction, d.test_fraction,
                                     d.split_seed).valid:
                    raise ValueError("no validation structure to calibrate the uncertainty on")
            except ValueError as exc:
                problem = (f"the data set would hold {n_dataset} structure(s), too few to train "
                           f"on ({exc}); {len(got['failures'])} of {n_requested} label(s) failed, "
                           f"{len(got['dropped'])} dropped by reference.max_force")
        if problem is None:
            return
        first = got["failures"][0]["reason"] if got["failures"] else None
        config = self.out / CONFIG_NAME
        raise RuntimeError(
            f"round {r}: {problem}" + (f"; first failure: {first}" if first else "")
            + f". The label stage is not marked done. Reasons per structure: {failures_file}. "
            f"Fix the reference calculator (reference.calculator, reference.timeout_s, "
            f"reference.max_force, reference.stress in {config}) and run "
            f"`ubmd al resume {self.out}`: failed labels are computed again (except those "
            "rejected for non-finite results: delete their "
            f"{failures_file.parent / 'labels'}/NNNNN.failed.json to retry them too)")

    def _train(self, r: int, st: RoundState) -> None:
        from .training import train_round

        dataset = self._dataset(r)
        prev = round_dir(self.out, r - 1) / "train" if r > 0 and self.cfg.warm_start else None
        t0 = time.perf_counter()
        result = train_round(self.cfg, dataset, st.dir / "train", prev, r)
        self._save_split(st, len(dataset), result)
        st.mark("train", wall_s=time.perf_counter() - t0, errors_valid=result.get("errors_valid"),
                errors_train=result.get("errors_train"), calibration=result.get("calibration"),
                quality_total=result.get("uncertainty_quality_total"),
                quality_atomic=result.get("uncertainty_quality_atomic"),
                n_train=result["n_train"], n_valid=result["n_valid"],
                initialisation=result.get("initialisation"))

    def _save_split(self, st: RoundState, n: int, result: dict) -> None:
        """``split.json``: the train/valid/test indices (into ``dataset.extxyz``) the round's model
        was trained with, from the data settings the training recorded in ``train/config.yaml``;
        later stages use it, whatever ``data.*`` says after an edit of the campaign's config."""
        split = _recorded_split(st.dir / "train", n)
        if split is None:  # training recorded no settings (cannot happen with train_round)
            d = self.cfg.data
            split = split_indices(n, d.valid_fraction, d.test_fraction, d.split_seed)
        if len(split.train) != result.get("n_train", len(split.train)):
            self.log(f"{st.dir}: the recorded split has {len(split.train)} training structures, "
                     f"training reported {result['n_train']}")
        write_json_atomic({"n": n, "train": split.train, "valid": split.valid, "test": split.test},
                          st.dir / SPLIT_NAME)

    def _training_split(self, st: RoundState, n: int) -> Split:
        """The split the round's model was trained with: ``split.json``; for rounds trained
        before it existed, recomputed from ``train/config.yaml`` (and saved)."""
        path = st.dir / SPLIT_NAME
        if path.exists():
            rec = _load_json(path)
            if rec["n"] != n:
                raise RuntimeError(f"{path} splits {rec['n']} structures but {st.dir}/"
                                   f"dataset.extxyz holds {n}")
            return Split(train=rec["train"], valid=rec["valid"], test=rec["test"])
        split = _recorded_split(st.dir / "train", n)
        if split is None:
            d = self.cfg.data
            self.log(f"{st.dir}: no {SPLIT_NAME} nor train/config.yaml; the split follows the "
                     "current data settings")
            return split_indices(n, d.valid_fraction, d.test_fraction, d.split_seed)
        n_train = st.info("train").get("n_train")
        if n_train is not None and n_train != len(split.train):
            self.log(f"{st.dir}: the split recomputed from train/config.yaml has "
                     f"{len(split.train)} training structures, training had {n_train}")
        write_json_atomic({"n": n, "train": split.train, "valid": split.valid, "test": split.test},
                          path)
        return split

    def walker_tasks(self, r: int, st: RoundState, w) -> list[WalkerTask]:
        """The round's walker jobs with walker settings ``w`` (``cfg.walkers`` with the round's
        threshold)."""
        src = 0 if w.start_from == "initial" else r
        starts = _read_frames(round_dir(self.out, src) / "labelled.extxyz") or self._dataset(r)
        if not starts:
            raise RuntimeError(f"round {r}: no labelled structure to start walkers from (every "
                               "label failed?); check label_failures.json")
        groups = start_groups(starts)
        n_settings = math.lcm(len(_as_list(w.temperature)), len(_as_list(w.pressure)))
        engine = resolve_engine(self.cfg)
        model_file = str((st.dir / "train" / "model.pt").resolve())
        species = [str(s) for s in self._model_species(st)]
        dihedrals = list(self.cfg.dihedrals.values()) if self.cfg.dihedrals else None
        return [WalkerTask(index=k, engine=engine, model_file=model_file, start=walker_start(groups, k, n_settings),
                           workdir=str((st.dir / "walkers" / f"w{k:02d}").resolve()),
                           temperature=_cyclic(w.temperature, k), pressure=_cyclic(w.pressure, k),
                           seed=w.seed + 1000 * r + k, params=w, dihedrals=dihedrals,
                           species=species)
                for k in range(w.n_walkers)]

    def _model_species(self, st: RoundState) -> list[str]:
        from .. import keys as K
        from ..export import load_model_file

        _, meta = load_model_file(st.dir / "train" / "model.pt")
        species = meta[K.META_SPECIES]
        return species.split() if isinstance(species, str) else list(species)

    def _threshold(self, r: int, st: RoundState) -> dict:
        """The round's stop threshold (``ubmd.al.threshold``); when it is new, walkers left by an
        interrupted sample stage under another threshold are marked unfinished, so they rerun."""
        from .threshold import load_or_compute

        rec, fresh = load_or_compute(st.dir / "walkers", self.cfg.walkers,
                                     st.dir / "train" / "model.pt", lambda: self._dataset(r),
                                     seed=self.cfg.walkers.seed + r)
        if fresh:
            for done in (st.dir / "walkers").glob(f"w*/{SUMMARY}"):
                done.unlink()
        return rec

    def _sample(self, r: int, st: RoundState) -> None:
        from .threshold import walker_params

        t0 = time.perf_counter()
        thr = self._threshold(r, st)
        tasks = self.walker_tasks(r, st, walker_params(self.cfg.walkers, thr))
        todo = [t for t in tasks if not _walker_finished(Path(t.workdir))]  # failed ones rerun
        broken = []
        for i, res in self.executor.map_unordered(run_walker, todo):
            if isinstance(res, cf.BrokenExecutor) and len(todo) == 1:  # its own pool: it crashed
                self._record_crash(r, todo[i], res)
            elif isinstance(res, cf.BrokenExecutor):  # the pool broke: maybe another walker's fault
                broken.append(todo[i])
            elif isinstance(res, BaseException):  # the worker process itself died
                _write_walker_error(todo[i], f"{type(res).__name__}: {res}")
        self._rerun_isolated(r, [t for t in broken if not _walker_finished(Path(t.workdir))])
        pool, walkers = [], []
        for t in tasks:
            summ = _load_json(Path(t.workdir) / SUMMARY)
            walkers.append(summ)
            origin = t.start.info.get("start_index")
            for f in read_candidates(Path(t.workdir) / CANDIDATES):
                f.info["al_round"] = r
                f.info["walker"] = t.index
                if origin is not None:  # which start structure this frame descends from
                    f.info["start_index"] = origin
                pool.append(f)
        n_err = sum(1 for s in walkers if s.get("stop_reason") == "error")
        if n_err:
            first = next(s for s in walkers if s.get("stop_reason") == "error")
            msg = f"round {r}: {n_err}/{len(walkers)} walkers failed; first: {first.get('error')}"
            if not pool:
                raise RuntimeError(msg + f" (no candidate frames; details in {st.dir / 'walkers'}"
                                   "/w*/summary.json; `ubmd al resume` reruns failed walkers)")
            self.log(msg)
        _write_frames(pool, st.dir / "pool.extxyz")
        st.mark("sample", wall_s=time.perf_counter() - t0, engine=tasks[0].engine,
                n_pool=len(pool), walkers=[_walker_brief(s) for s in walkers], threshold=thr)

    def _rerun_isolated(self, r: int, tasks: list[WalkerTask]) -> None:
        """Rerun the walkers a broken process pool left unfinished (one walker's process died,
        e.g. a segfault, and the pool then fails every job not yet done), each in a fresh
        one-process pool, so that only a walker that crashes its own process is recorded as
        crashed (``"crashed": true`` in its summary)."""
        if not tasks:
            return
        self.log(f"round {r}: a walker process died and broke the pool; rerunning "
                 f"{len(tasks)} unfinished walker(s) one process each: "
                 + " ".join(f"w{t.index:02d}" for t in tasks))
        n_parallel = max(1, int(getattr(self.executor, "n_workers", 1)))
        for t, res in run_isolated(run_walker, tasks, n_parallel):
            if isinstance(res, cf.BrokenExecutor):
                self._record_crash(r, t, res)
            elif isinstance(res, BaseException):
                _write_walker_error(t, f"{type(res).__name__}: {res}")

    def _record_crash(self, r: int, t: WalkerTask, exc: BaseException) -> None:
        _write_walker_error(t, f"walker w{t.index:02d} crashed its worker process "
                               f"({type(exc).__name__}: {exc})", crashed=True)
        self.log(f"round {r}: walker w{t.index:02d} crashed its worker process")

    def _select(self, r: int, st: RoundState) -> None:
        from .pool import RoundModel, select_from_pool

        t0 = time.perf_counter()
        pool = _read_frames(st.dir / "pool.extxyz")
        remaining = self.cfg.label_budget - self.labels_used(r)
        b = min(self.cfg.selection.batch_size, remaining)
        if not pool:
            raise RuntimeError(f"round {r}: the walkers produced no candidate frames; lower "
                               "walkers.sample_every, raise walkers.max_steps, or read the walker "
                               f"summaries in {st.dir / 'walkers'}")
        dataset = self._dataset(r)
        split = self._training_split(st, len(dataset))
        model = RoundModel(st.dir / "train", self.cfg.train_config(st.dir / "train"))
        idx = select_from_pool(model, pool, dataset, [dataset[i] for i in split.train],
                               self.cfg.selection.method, b, seed=self.cfg.selection.seed + r)
        chosen = [pool[int(i)] for i in idx]
        _write_frames(chosen, st.dir / "selected.extxyz")
        st.mark("select", wall_s=time.perf_counter() - t0, n_selected=len(chosen),
                indices=[int(i) for i in idx],
                selected_max_atomic_u=[float(f.info.get("max_atomic_uncertainty", math.nan))
                                       for f in chosen])

    # ------------------------------------------------------------------ reporting
    def _coverage(self, r: int) -> dict | None:
        if not self.cfg.dihedrals:
            return None
        from ..analysis.coverage import coverage_by_round

        points = {}
        for q in range(r + 1):
            walkers = []
            for tr in sorted((round_dir(self.out, q) / "walkers").glob(f"w*/{TRACE}")):
                d = np.load(tr)
                if "cvs" in d and len(d["cvs"]):
                    walkers.append(d["cvs"])
            if walkers:
                points[q] = walkers
        if not points:
            return None
        res = coverage_by_round(points)
        key = str(max(points))
        return {"this_round": res["per_round"][key], "cumulative": res["cumulative"][key]}

    def _write_summary(self, r: int, st: RoundState, last: bool) -> dict:
        lab, tr = st.info("label"), st.info("train")
        smp, sel = st.info("sample"), st.info("select")
        steps = [w["n_steps"] for w in smp.get("walkers", [])]
        summary = {
            "round": r, "last": last, "labels_used": self.labels_used(r),
            "label_budget": self.cfg.label_budget, "n_dataset": lab.get("n_dataset"),
            "n_new_labels": lab.get("n_labelled"), "n_failed": lab.get("n_failed"),
            "n_dropped": lab.get("n_dropped"),
            "timings_s": {"reference": lab.get("reference_s"), "reference_wall": lab.get("wall_s"),
                          "training": tr.get("wall_s"), "sampling": smp.get("wall_s"),
                          "selection": sel.get("wall_s")},
            "errors_valid": tr.get("errors_valid"), "errors_train": tr.get("errors_train"),
            "calibration": tr.get("calibration"), "quality_total": tr.get("quality_total"),
            "quality_atomic": tr.get("quality_atomic"),
            "engine": smp.get("engine"), "walkers": smp.get("walkers"), "n_pool": smp.get("n_pool"),
            "threshold": smp.get("threshold"),
            "n_selected": sel.get("n_selected"), "coverage": self._coverage(r) if not last else None,
        }
        write_json_atomic(summary, st.dir / "summary.json")
        self.log(format_log_line(summary))
        return summary

    def _write_campaign(self, r: int, finished: bool) -> None:
        rounds = [_load_json(round_dir(self.out, q) / "summary.json") for q in range(r + 1)]
        write_json_atomic({"finished": finished, "n_rounds": r + 1,
                           "labels_used": self.labels_used(r), "rounds": rounds},
                          self.out / "campaign.json")

    def read_campaign(self) -> dict:
        return _load_json(self.out / "campaign.json")


LOCK_NAME = ".campaign.lock"


def acquire_campaign_lock(out: Path):
    """An exclusive ``flock`` on ``out/.campaign.lock`` for as long as the returned file is open
    (the kernel drops it when the process dies, so a killed run leaves no stale lock). Two
    drivers on one directory would label, train and write the same rounds over each other."""
    import fcntl
    import os

    fh = open(out / LOCK_NAME, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise RuntimeError(f"{out} is in use by {holder}: one campaign directory takes one "
                           "driver at a time (wait for it, or stop it and `ubmd al resume` it)")
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


def _load_json(path: Path) -> dict:
    import json

    return json.loads(Path(path).read_text())


def _recorded_split(train_dir: Path, n: int) -> Split | None:
    """The split of ``n`` structures under the data settings in ``train_dir/config.yaml`` (what
    :func:`ubmd.workflow.train_from_config` saved and used), None without that file."""
    import yaml

    path = Path(train_dir) / "config.yaml"
    if not path.exists():
        return None
    d = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
    return split_indices(n, d.get("valid_fraction"), d.get("test_fraction", 0),
                         d.get("split_seed", 0))


def start_groups(frames: list[Atoms]) -> list[list[Atoms]]:
    """Candidate start structures grouped by origin, in order of first appearance: the origin is
    ``info["start_index"]`` (set in round 0 and carried along through the walkers' candidates),
    else the chemical formula and periodicity; order within an origin is kept."""
    groups: dict = {}
    for f in frames:
        key = f.info.get("start_index")
        key = ("start", int(key)) if key is not None else (
            "formula", f.get_chemical_formula(), tuple(bool(x) for x in f.pbc))
        groups.setdefault(key, []).append(f)
    return list(groups.values())


def walker_start(groups: list[list[Atoms]], k: int, n_settings: int = 1) -> Atoms:
    """Start structure of walker k: every origin gets walkers (a campaign with two molecules, or
    a bulk cell and a slab, explores all of them, not only the first one's perturbed copies), and
    every origin meets every walker setting (walker k runs temperature/pressure entry
    k % n_settings). Origin g = k mod G (round-robin over origins, frame k // G of each) pairs
    with every setting by itself when gcd(G, n_settings) = 1; otherwise g is shifted by one per
    lcm(G, n_settings) walkers, which runs through all G x n_settings pairs. One origin: frame
    k mod n, as always."""
    n_groups = len(groups)
    g = k % n_groups
    if math.gcd(n_groups, n_settings) > 1:
        g = (k + k // math.lcm(n_groups, n_settings)) % n_groups
    return groups[g][(k // n_groups) % len(groups[g])]


def _read_start_frames(spec, index: str) -> list[Atoms]:
    """``initial.structures`` frames ``initial.index`` of each file; an index that selects no frame
    of a file is an error naming the file and its frame count (ASE only says StopIteration)."""
    from ..data import read_structures
    from .config import parse_index

    idx = parse_index(index)
    try:
        return read_starts(spec, index)
    except ValueError:
        for path in [spec] if isinstance(spec, str) else list(spec or []):
            n = len(read_structures(path))  # raises the reader's own error for a bad file
            chosen = range(n)[idx] if isinstance(idx, slice) else (
                [idx] if -n <= idx < n else [])
            if not len(chosen):
                raise ValueError(f"initial.index {index!r} selects no frame of {path} ({n} "
                                 f"frame{'s' if n != 1 else ''}: 0..{n - 1}, or -{n}..-1 from "
                                 "the end)") from None
        raise


def _walker_finished(workdir: Path) -> bool:
    path = workdir / SUMMARY
    return path.exists() and _load_json(path).get("stop_reason") != "error"


def _write_walker_error(task: WalkerTask, error: str, crashed: bool = False) -> None:
    summary = {"index": task.index, "engine": task.engine, "stop_reason": "error", "n_steps": 0,
               "n_candidates": 0, "error": error}
    if crashed:
        summary["crashed"] = True
    Path(task.workdir).mkdir(parents=True, exist_ok=True)  # a job that never started made none
    write_json_atomic(summary, Path(task.workdir) / SUMMARY)


def run_isolated(fn: Callable, items: list, n_parallel: int):
    """``fn(item)`` for each item in its own one-process ``spawn`` pool, at most ``n_parallel``
    at once; yields ``(item, result or exception)`` as they finish. A process that dies breaks
    only its own pool: the item gets a ``BrokenProcessPool``, the others are unaffected."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    pending, running = list(items), {}
    try:
        while pending or running:
            while pending and len(running) < n_parallel:
                item = pending.pop(0)
                pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx)
                running[pool.submit(fn, item)] = (item, pool)
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                item, pool = running.pop(fut)
                pool.shutdown(wait=True)
                try:
                    yield item, fut.result()
                except Exception as exc:  # noqa: BLE001 - reported to the caller per item
                    yield item, exc
    finally:
        for fut, (_, pool) in running.items():
            fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)


def _walker_brief(s: dict) -> dict:
    keys = ("index", "stop_reason", "n_steps", "time_fs", "n_candidates", "max_atomic_uncertainty",
            "wall_s", "temperature_K", "pressure_bar", "final_volume", "error", "crashed")
    return {k: s[k] for k in keys if k in s}


def format_log_line(s: dict) -> str:
    """One line per round: labels, errors, calibration, walkers, coverage, timings."""
    parts = [f"round {s['round']}: labels {s['labels_used']}/{s['label_budget']} "
             f"(dataset {s['n_dataset']}, +{s['n_new_labels']}, failed {s['n_failed']}, "
             f"dropped {s['n_dropped']})"]
    e = s.get("errors_valid") or {}
    if e:
        parts.append(f"valid E {1000 * e.get('energy_rmse', math.nan):.2f} meV/atom "
                     f"F {e.get('forces_rmse', math.nan):.3f} eV/Å")
    c = s.get("calibration") or {}
    if c:
        q = (s.get("quality_atomic") or {}).get("coverage")
        parts.append(f"calib c={c.get('total', math.nan):.3g}/{c.get('atomic', math.nan):.3g}"
                     + (f" atomic cov {q:.2f}" if q is not None else ""))
    if s.get("walkers"):
        steps = [w.get("n_steps", 0) for w in s["walkers"]]
        n_thr = sum(1 for w in s["walkers"] if w.get("stop_reason") == "threshold")
        thr = s.get("threshold") or {}
        by = f" > {thr['threshold']:.3g} eV/Å" if thr.get("relative") is not None else ""
        parts.append(f"{s['engine']} walkers stop {np.mean(steps):.0f}±{np.std(steps):.0f} steps "
                     f"({n_thr}/{len(steps)} by u{by}), pool {s.get('n_pool')}")
    if s.get("coverage"):
        parts.append(f"coverage {s['coverage']['this_round']:.3f} "
                     f"(cum. {s['coverage']['cumulative']:.3f})")
    t = s.get("timings_s", {})
    parts.append("t[s] " + " ".join(f"{k[:5]} {v:.1f}" for k, v in t.items()
                                    if v is not None and k != "reference_wall"))
    return " | ".join(parts)


def run_campaign(cfg: ALConfig, log=None) -> dict:
    """Run (or continue) a campaign; refuses an output directory made by a different config."""
    cfg = absolute_paths(cfg)
    out = Path(cfg.output)
    existing = out / CONFIG_NAME
    if existing.exists():
        from ..config import to_dict

        old = load_al_config(existing)
        old.output = cfg.output
        if to_dict(old) != to_dict(cfg):
            diff = config_differences(to_dict(old), to_dict(cfg))
            shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
            raise ValueError(f"{out} holds a campaign with a different config ({shown}); resume it "
                             f"with `ubmd al resume {out}` (to change settings of a campaign, "
                             f"edit {existing} and resume) or choose another output directory")
    return Campaign(cfg, log).run()


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


def resume_campaign(output: str | Path, log=None) -> dict:
    """Continue the campaign in ``output`` with its saved config."""
    path = Path(output) / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {output} is not a campaign directory")
    cfg = load_al_config(path)
    cfg.output = str(output)
    return Campaign(cfg, log).run()
