"""The five stages of an AL round (docs/method.md), each a small function ``stage(ctx, rl)``
of a :class:`StageContext` and the round's :class:`~ubmd.al.layout.RoundLayout`:

1. :func:`propose`: structures to label (round 0: start structures + perturbed copies; later
   rounds: the previous round's selection);
2. :func:`label`: reference labels, checkpointed one by one, force filter, the round's data set;
   a failed label is recorded and skipped, but when every label of the round failed, or the data
   set would be too small to split, the stage stops with an error and stays unmarked: a resume
   computes the failed labels again;
3. :func:`train`: train (ensembles too; from scratch or warm-started), fit + calibrate the
   uncertainty on the validation split, export the round's model file; the split is saved
   (selection reuses it, whatever ``data.*`` says later);
4. :func:`sample`: biased MD walkers run concurrently (finished walkers are not rerun on resume;
   a walker that crashes its worker process is recorded as crashed) -> the candidate pool;
5. :func:`select`: features of the pool, batch selection -> the frames to label next.

Each writes its outputs first and then marks itself done (:meth:`RoundLayout.mark`). A
campaign takes other stage functions through ``Campaign(cfg, stages={...})``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from ..data import label_keys_from, no_labels_message, read_structure_files, with_standard_labels
from ..data import split_indices
from ..errors import RunStopped
from ..executors import FailureKind, JobFailure
from ..io import write_json_atomic
from ..labelling import LabelFailure, collect_labels, label_checkpointed
from ..md.engines import resolve_engine, run_walker
from ..md.starts import check_walker_starts
from . import walkers as W
from .config import ALConfig
from .initial import check_dihedrals, initial_structures, read_start_frames
from .layout import CampaignLayout, RoundLayout


@dataclass
class StageContext:
    """What every stage may use: the config (``cfg``), the campaign's layout (``layout``; the
    round's own files come as the stage's second argument), ``log(line)`` (a line in the
    campaign's log), the executor (``executor``: created on first use, closed by :meth:`close`)
    and the campaign's progress display (``progress``, :class:`ubmd.al.progress.CampaignProgress`;
    None outside a campaign)."""

    cfg: ALConfig
    layout: CampaignLayout
    log: Callable[[str], None]
    _executor: object = field(default=None, repr=False)
    progress: object = field(default=None, repr=False)

    @property
    def executor(self):
        if self._executor is None:
            self._executor = self.cfg.executor.make()
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None


def propose(ctx: StageContext, rl: RoundLayout) -> None:
    """Structures to label: round 0 the start structures (``initial.*``, checked) and their
    perturbed copies, later rounds the previous round's ``selected.extxyz``. Writes
    ``rl.to_label``; marks ``propose`` with ``n`` (the labels this round requests, counted
    against the budget)."""
    cfg, r = ctx.cfg, rl.index
    c = cfg.initial
    if r == 0:
        starts = read_start_frames(c.structures, c.index)
        check_walker_starts(starts, cfg.walkers.ensemble, source="initial.structures",
                            option="walkers.ensemble")
        check_dihedrals(starts, cfg.dihedrals)
        frames = initial_structures(starts, c.n_perturbed, c.displacement, c.strain, c.seed)
        if len(frames) > cfg.label_budget:
            raise ValueError(f"the initial data ({len(frames)} structures) exceed the label "
                             f"budget ({cfg.label_budget}); raise label_budget or lower "
                             "initial.n_perturbed")
    else:
        frames = ctx.layout.round(r - 1).selected_frames()
    for f in frames:
        f.info["al_round"] = r
    rl.write_frames(frames, rl.to_label)
    rl.mark("propose", n=len(frames))


def label(ctx: StageContext, rl: RoundLayout) -> None:
    """Reference labels of ``rl.to_label_frames()`` (``reference.*``), each checkpointed in
    ``rl.labels_dir`` as it arrives; failures recorded, labels over ``reference.max_force``
    dropped. Writes ``rl.labelled``, ``rl.dataset`` (the previous round's data set, or
    ``initial.data``, plus the new labels) and ``rl.label_failures``; marks ``label`` with
    ``n_requested``, ``n_labelled``, ``n_failed``, ``n_dropped``, ``n_dataset``,
    ``reference_s``, ``wall_s``. Raises :class:`ubmd.RunStopped` (stage unmarked) when every
    label failed or the data set is too small to split."""
    cfg, r = ctx.cfg, rl.index
    frames = rl.to_label_frames()
    ex = ctx.executor if cfg.executor.kind != "local" else None  # local: the labeller's own pool
    info = label_checkpointed(frames, rl.labels_dir, cfg.reference, executor=ex)
    if info["n_retried"]:
        ctx.log(f"round {r}: retried {info['n_retried']} failed label(s)")
    got = collect_labels(rl.labels_dir, len(frames), cfg.reference.max_force)
    dataset = ctx.layout.round(r - 1).dataset_frames() if r > 0 else []
    if r == 0 and cfg.initial.data:
        # under the data.*_key names; stored (and trained on) under the standard ones
        keys = label_keys_from(cfg.data)
        given = read_structure_files(cfg.initial.data, what="initial.data")
        dataset = [with_standard_labels(a, keys) for a in given]
        if dataset and all(a.calc.results.get("energy") is None
                           and a.calc.results.get("forces") is None for a in dataset):
            raise ValueError(f"initial.data: {no_labels_message(given, keys)}")
    new = got["kept"]
    write_json_atomic({"failures": got["failures"], "dropped": got["dropped"]}, rl.label_failures)
    check_labels(ctx, rl, len(frames), got, len(dataset) + len(new))
    rl.write_frames(new, rl.labelled)
    rl.write_frames(dataset + new, rl.dataset)
    rl.mark("label", n_requested=len(frames), n_labelled=len(new), n_failed=len(got["failures"]),
            n_dropped=len(got["dropped"]), n_dataset=len(dataset) + len(new),
            reference_s=got["reference_s"], wall_s=info["wall_s"])


def check_labels(ctx: StageContext, rl: RoundLayout, n_requested: int, got: dict,
                 n_dataset: int) -> None:
    """Refuse to finish a label stage (so that ``ubmd al resume`` redoes it) when every label
    of the round failed with a retryable error, or when the data set would be too small to
    split into training and validation data. Single failures are recorded and skipped."""
    retryable = [f for f in got["failures"] if LabelFailure(f["kind"]).retryable]
    problem = None
    if n_requested and not got["labelled"] and retryable:
        problem = f"every label failed ({len(got['failures'])} of {n_requested})"
    else:
        d = ctx.cfg.data
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
    out = ctx.layout.root
    raise RunStopped(
        f"round {rl.index}: {problem}" + (f"; first failure: {first}" if first else "")
        + f". The label stage is not marked done. Reasons per structure: {rl.label_failures}. "
        f"Fix the reference calculator (reference.calculator, reference.timeout_s, "
        f"reference.max_force, reference.stress in {ctx.layout.config}) and run "
        f"`ubmd al resume {out}`: failed labels are computed again (except those "
        f"rejected for non-finite results: delete their {rl.labels_dir}/NNNNN.failed.json to "
        "retry them too)")


def train(ctx: StageContext, rl: RoundLayout) -> None:
    """Train the round's model on ``rl.dataset_frames()`` (``model``, ``training``,
    ``uncertainty``; warm-started with ``warm_start``), calibrate, export ``rl.model_file``
    into ``rl.train_dir`` (a ``ubmd train`` run whose config names ``rl.dataset``); writes
    ``rl.split_file``; marks ``train`` with ``errors_valid``, ``errors_train``,
    ``calibration``, ``n_train``, ``n_valid`` ..."""
    from .training import train_round

    cfg, r = ctx.cfg, rl.index
    dataset = rl.dataset_frames()
    prev = ctx.layout.round(r - 1).train_dir if r > 0 and cfg.warm_start else None
    t0 = time.perf_counter()
    on_epoch = ctx.progress.epoch_callback(rl.train_dir) if ctx.progress is not None else None
    result = train_round(cfg, dataset, rl.train_dir, prev, r, data_file=rl.dataset,
                         on_epoch=on_epoch)
    split = rl.recorded_split(len(dataset))  # what the training used (its config.yaml)
    if split is None:  # (train_round always writes it; a custom train stage may not)
        d = cfg.data
        split = split_indices(len(dataset), d.valid_fraction, d.test_fraction, d.split_seed)
    if len(split.train) != result.get("n_train", len(split.train)):
        ctx.log(f"{rl.dir}: the recorded split has {len(split.train)} training structures, "
                f"training reported {result['n_train']}")
    rl.write_split(split, len(dataset))
    rl.mark("train", wall_s=time.perf_counter() - t0, errors_valid=result.get("errors_valid"),
            errors_train=result.get("errors_train"), calibration=result.get("calibration"),
            quality_total=result.get("uncertainty_quality_total"),
            quality_atomic=result.get("uncertainty_quality_atomic"),
            n_train=result["n_train"], n_valid=result["n_valid"],
            initialisation=result.get("initialisation"))


def _threshold(ctx: StageContext, rl: RoundLayout) -> dict:
    """The round's stop threshold (:mod:`ubmd.al.threshold`); when it is new, walkers left by an
    interrupted sample stage under another threshold are marked unfinished, so they rerun."""
    from .threshold import load_or_compute

    rec, fresh = load_or_compute(rl.walkers_dir, ctx.cfg.walkers, rl.model_file,
                                 rl.dataset_frames, seed=ctx.cfg.walkers.seed + rl.index)
    if fresh:
        for done in rl.walker_summaries():
            done.unlink()
    return rec


def walker_starts(layout: CampaignLayout, rl: RoundLayout, start_from: str,
                  seed: int) -> list:
    """The structures round ``rl`` hands its walkers (in order; :func:`walkers.walker_start`
    deals them out, every origin getting walkers): ``previous``, the structures labelled for
    this round (the previous round's selection; a round without labels falls back to its data
    set); ``initial``, round 0's; ``dataset``, the round's whole data set in a seeded random
    order (``seed``, round index), so that walkers restart anywhere the campaign has labels
    instead of only where it labelled last."""
    if start_from == "dataset":
        return W.shuffled(rl.dataset_frames(), seed, rl.index)
    src = layout.round(0 if start_from == "initial" else rl.index)
    return src.labelled_frames() or rl.dataset_frames()


def sample(ctx: StageContext, rl: RoundLayout) -> None:
    """The round's threshold (``walkers/threshold.json``), then ``walkers.n_walkers`` biased MD
    walkers (``rl.walker_dir(k)``) through ``ctx.executor``, finished ones not rerun; writes
    the candidate pool ``rl.pool``; marks ``sample`` with ``engine``, ``n_pool``, ``walkers``
    (each one's stop reason, steps, ...), ``threshold``, ``wall_s``."""
    from .threshold import walker_params

    cfg, r = ctx.cfg, rl.index
    t0 = time.perf_counter()
    thr = _threshold(ctx, rl)
    w = walker_params(cfg.walkers, thr)
    starts = walker_starts(ctx.layout, rl, w.start_from, w.seed)
    if not starts:
        raise RunStopped(f"round {r}: no labelled structure to start walkers from (every "
                           f"label failed?); check {rl.label_failures}")
    dihedrals = list(cfg.dihedrals.values()) if cfg.dihedrals else None
    tasks = W.walker_tasks(w, starts, resolve_engine(w.engine, w.lammps), rl.model_file,
                           rl.walker_dir, r, dihedrals)
    todo = [t for t in tasks if not W.finished(t)]  # failed ones rerun
    for i, res in ctx.executor.map_unordered(run_walker, todo):
        if isinstance(res, JobFailure) and res.kind is FailureKind.CRASHED:
            W.write_error(todo[i], f"walker w{todo[i].index:02d} crashed its worker process "
                                   f"({res.reason})", crashed=True)
            ctx.log(f"round {r}: walker w{todo[i].index:02d} crashed its worker process")
        elif isinstance(res, JobFailure):
            W.write_error(todo[i], res.reason, traceback=res.traceback)
    pool, summaries = W.collect(tasks, r)
    failed = [s for s in summaries if s.get("stop_reason") == "error"]
    if failed:
        msg = (f"round {r}: {len(failed)}/{len(summaries)} walkers failed; first: "
               f"{failed[0].get('error')}")
        if not pool:
            raise RunStopped(msg + f" (no candidate frames; details in {rl.walkers_dir}"
                               "/w*/summary.json; `ubmd al resume` reruns failed walkers)")
        ctx.log(msg)
    rl.write_frames(pool, rl.pool)
    rl.mark("sample", wall_s=time.perf_counter() - t0, engine=tasks[0].engine, n_pool=len(pool),
            walkers=[W.brief(s) for s in summaries], threshold=thr)


def select(ctx: StageContext, rl: RoundLayout) -> None:
    """A batch of ``selection.batch_size`` (capped by the remaining budget) of
    ``rl.pool_frames()`` by ``selection.method``, with the round's model features, against its
    training split; writes ``rl.selected`` (the next round's structures to label); marks
    ``select`` with ``n_selected``, ``indices``, ``wall_s``."""
    from ..selection.pool import RunFeatures, select_from_pool

    cfg, r = ctx.cfg, rl.index
    t0 = time.perf_counter()
    pool = rl.pool_frames()
    remaining = cfg.label_budget - ctx.layout.labels_used(r)
    b = min(cfg.selection.batch_size, remaining)
    if not pool:
        raise RunStopped(f"round {r}: the walkers produced no candidate frames; lower "
                           "walkers.sample_every, raise walkers.max_steps, or read the walker "
                           f"summaries in {rl.walkers_dir}")
    dataset = rl.dataset_frames()
    split = rl.read_split(len(dataset))
    if split is None:
        d = cfg.data
        ctx.log(f"{rl.dir}: no split.json nor train/config.yaml; the split follows the current "
                "data settings")
        split = split_indices(len(dataset), d.valid_fraction, d.test_fraction, d.split_seed)
    model = RunFeatures(rl.train_dir, cfg.train_config(rl.train_dir, rl.dataset))
    idx = select_from_pool(model, pool, dataset, [dataset[i] for i in split.train],
                           cfg.selection.method, b, seed=cfg.selection.seed + r)
    chosen = [pool[int(i)] for i in idx]
    rl.write_frames(chosen, rl.selected)
    rl.mark("select", wall_s=time.perf_counter() - t0, n_selected=len(chosen),
            indices=[int(i) for i in idx],
            selected_max_atomic_u=[float(f.info.get("max_atomic_uncertainty", math.nan))
                                   for f in chosen])


#: the stages of a round, in order; propose/label/train run in every round, sample/select in
#: every round but the last
STAGE_FUNCTIONS: dict[str, Callable[[StageContext, RoundLayout], None]] = {
    "propose": propose, "label": label, "train": train, "sample": sample, "select": select}
