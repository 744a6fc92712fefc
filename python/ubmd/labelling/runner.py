"""Run reference calculations on many structures concurrently, surviving failed jobs.

Each structure is one *job*: build a fresh calculator from the spec (see
:mod:`ubmd.labelling.calculators`), compute energy (eV), forces (eV/Å) and, for cells periodic in
all three directions, stress (eV/Å^3, ASE sign convention, Voigt order xx yy zz yz xz xy).

Jobs run through :mod:`ubmd.executors`: by default ``n_workers`` local worker processes
(``spawn``); a job that raises, returns NaN, crashes its worker (segfault) or exceeds ``timeout``
(the worker is killed and replaced) is recorded as a failure of a typed :class:`LabelFailure`
kind; the other jobs carry on. Any :class:`ubmd.executors.Executor` (Dask) or
``concurrent.futures``-like object can be given instead; there a timed out job can only be
abandoned (cancelled if still queued), not killed.

Scripts using the default pool must guard their entry point with ``if __name__ == "__main__":``
(the usual ``spawn`` rule).
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..executors import FailureKind, JobFailure, LocalExecutor, as_executor
from ..errors import MissingImportError
from .calculators import check_structure, make_calculator, normalise_spec, spec_label

__all__ = [
    "POOL_INDEX",
    "LABEL_TIME",
    "LABEL_METHOD",
    "JobOutcome",
    "LabelFailure",
    "LabelResult",
    "label_one",
    "label_structures",
    "filter_by_max_force",
]

POOL_INDEX = "pool_index"  # info key: index of the structure in the list given to the labeller
LABEL_TIME = "label_time_s"  # info key: seconds spent in the reference calculation
LABEL_METHOD = "label_method"  # info key: short name of the calculator spec
_ALLOWED_PROPERTIES = ("energy", "forces", "stress")


class LabelFailure(str, enum.Enum):
    """Why a structure got no label. ``rejected``: the calculator answered with non-finite
    energies, forces or stresses (a property of the structure: a retry gives the same answer);
    the others are failures of the job (:class:`ubmd.executors.FailureKind`): the calculator
    raised (``error``), its worker process died (``crashed``) or it ran too long (``timeout``)."""

    REJECTED = "rejected"
    ERROR = FailureKind.ERROR.value
    CRASHED = FailureKind.CRASHED.value
    TIMEOUT = FailureKind.TIMEOUT.value

    @property
    def retryable(self) -> bool:
        """Whether computing the label again may succeed (all but ``rejected``)."""
        return self is not LabelFailure.REJECTED


# ----------------------------------------------------------------------------------------------
# the job (runs inside a worker)
# ----------------------------------------------------------------------------------------------
def _wants_stress(atoms, properties: Sequence[str]) -> bool:
    return "stress" in properties and bool(np.all(atoms.pbc))


def label_one(atoms, spec: Any, properties: Sequence[str] = _ALLOWED_PROPERTIES) -> dict:
    """Label one structure; returns ``{"energy", "forces", "stress" (or None), "elapsed"}``.

    Energy in eV, forces [N, 3] in eV/Å, stress [6] Voigt in eV/Å^3 (only when requested and the
    cell is periodic in x, y and z), elapsed in s. Raises whatever the calculator raises.
    """
    atoms = atoms.copy()
    atoms.calc = None
    check_structure(spec, atoms)
    t0 = time.perf_counter()
    calc = make_calculator(spec)
    atoms.calc = calc
    out = {"energy": None, "forces": None, "stress": None}
    if "energy" in properties:
        out["energy"] = float(atoms.get_potential_energy())
    if "forces" in properties:
        out["forces"] = np.array(atoms.get_forces(apply_constraint=False), dtype=float)
    if _wants_stress(atoms, properties):
        from ase.calculators.calculator import PropertyNotImplementedError

        try:
            out["stress"] = np.array(atoms.get_stress(voigt=True, apply_constraint=False),
                                     dtype=float)
        except PropertyNotImplementedError as exc:
            raise PropertyNotImplementedError(
                f"{type(calc).__name__} has no stress for this periodic cell ({exc}); label "
                "energies and forces only: reference.stress: false in a ubmd al config (NPT "
                "walkers then use a stress learnt from energies alone), "
                "properties=('energy', 'forces') for label_structures"
            ) from exc
    out["elapsed"] = time.perf_counter() - t0
    return out


def _check_finite(result: dict, n_atoms: int) -> tuple[str | None, "LabelFailure | None"]:
    """(reason, kind) if a result is unusable, else (None, None): non-finite numbers are
    ``rejected`` (a property of the structure), a wrong shape an ``error`` (the calculator's)."""
    for key in ("energy", "forces", "stress"):
        value = result.get(key)
        if value is None:
            continue
        arr = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(arr)):
            return f"non-finite {key} returned by the calculator", LabelFailure.REJECTED
    forces = result.get("forces")
    if forces is not None and np.shape(forces) != (n_atoms, 3):
        return (f"forces have shape {np.shape(forces)}, expected ({n_atoms}, 3)",
                LabelFailure.ERROR)
    return None, None


def _label_job(job: tuple) -> dict:
    """Worker side of :func:`label_structures`: ``label_one(atoms, spec, properties)``."""
    atoms, spec, properties = job
    return label_one(atoms, spec, properties)


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------
@dataclass
class JobOutcome:
    """One finished job: ``atoms`` (labelled copy) on success, else ``reason`` and ``kind``;
    elapsed in s."""

    index: int
    atoms: Any | None
    reason: str | None
    elapsed: float
    kind: LabelFailure | None = None

    @property
    def ok(self) -> bool:
        return self.atoms is not None


@dataclass
class LabelResult:
    """Labelled structures (input order), failures and per-job timings (s).

    ``labelled[k].info[POOL_INDEX]`` is the structure's index in the input list; ``failures`` is a
    list of ``{"index", "reason", "kind", "elapsed"}`` (kind: a :class:`LabelFailure` value); ``timings`` maps every job index to its elapsed
    time (compute time for successes, wall time for failures).
    """

    labelled: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def n_jobs(self) -> int:
        return len(self.timings)

    @property
    def labelled_indices(self) -> list[int]:
        return [a.info[POOL_INDEX] for a in self.labelled]

    def summary(self) -> str:
        t = np.array([a.info[LABEL_TIME] for a in self.labelled]) if self.labelled else None
        mean = f", mean {t.mean():.3g} s/label" if t is not None else ""
        return (f"{len(self.labelled)}/{self.n_jobs} labelled, {len(self.failures)} failed, "
                f"wall {self.wall_time_s:.3g} s{mean}")


def _attach(atoms, index: int, result: dict, method: str):
    """Copy of ``atoms`` with a SinglePointCalculator holding ``result`` and bookkeeping info."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = atoms.copy()
    out.calc = None
    results = {}
    if result.get("energy") is not None:
        results["energy"] = result["energy"]
        results["free_energy"] = result["energy"]
    if result.get("forces") is not None:
        results["forces"] = np.asarray(result["forces"], dtype=float)
    if result.get("stress") is not None:
        results["stress"] = np.asarray(result["stress"], dtype=float)
    out.calc = SinglePointCalculator(out, **results)
    out.info[POOL_INDEX] = int(index)
    out.info[LABEL_TIME] = float(result["elapsed"])
    out.info[LABEL_METHOD] = method
    return out


# ----------------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------------
def check_importable(spec, key: str | None = None) -> None:
    """Fail early (in the parent) on an import spec whose module or file does not exist
    (ImportError, naming the config ``key`` when given)."""
    import importlib.util
    from pathlib import Path

    from .calculators import BUILTINS

    if callable(spec) or "import" not in spec:
        return
    module_part = spec["import"].rpartition(":")[0]
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        ok = Path(module_part).expanduser().is_file()
    else:
        try:
            ok = importlib.util.find_spec(module_part) is not None
        except (ImportError, ValueError):
            ok = False
    if not ok:
        where = f"{key}: " if key else ""
        raise MissingImportError(f"{where}cannot find calculator module for {spec['import']!r}; "
                          f"built-in names: {', '.join(sorted(BUILTINS))}")


def label_structures(
    atoms_list: Iterable,
    spec: Any,
    n_workers: int = 2,
    timeout: float | None = None,
    properties: Sequence[str] = _ALLOWED_PROPERTIES,
    callback: Callable[[JobOutcome], None] | None = None,
    progress: bool = False,
    executor: Any | None = None,
    threads_per_worker: int | None = 1,
    start_method: str = "spawn",
) -> LabelResult:
    """Label structures concurrently; failed jobs are recorded and skipped, never raised.

    Args:
        atoms_list: ASE Atoms objects (not modified).
        spec: calculator spec (see :mod:`ubmd.labelling.calculators`).
        n_workers: concurrent jobs (worker processes, or in-flight futures for ``executor``).
        timeout: per-job limit in s (None = no limit). Locally the worker is killed.
        properties: subset of ("energy", "forces", "stress"); stress is only computed for cells
            periodic in x, y and z (a periodic cell whose calculator lacks stress fails).
        callback: called with a :class:`JobOutcome` as each job finishes (e.g. to checkpoint
            each label to disk); exceptions from it propagate (workers are shut down first).
        progress: show a tqdm progress bar.
        executor: a :class:`ubmd.executors.Executor` (e.g. ``DaskExecutor``) or any object
            with ``submit(fn, *args)`` returning concurrent.futures-like futures
            (ProcessPoolExecutor, ``dask.distributed.Client.get_executor()``...), with at most
            ``n_workers`` jobs in flight. None: ``n_workers`` local worker processes.
        threads_per_worker: OMP/MKL/OpenBLAS threads in local workers (None: inherit).
        start_method: multiprocessing start method for local workers.

    Returns:
        :class:`LabelResult` with labelled copies (SinglePointCalculator holding energy eV,
        forces eV/Å, stress eV/Å^3; ``info`` gets ``pool_index``, ``label_time_s``,
        ``label_method``) in input order, failures and timings.

    Raises:
        ValueError/TypeError/ImportError only for a malformed spec or arguments, before any job.
    """
    spec = normalise_spec(spec)
    check_importable(spec)
    properties = tuple(properties)
    bad = [p for p in properties if p not in _ALLOWED_PROPERTIES]
    if bad or not properties:
        raise ValueError(f"properties must be a non-empty subset of {_ALLOWED_PROPERTIES}, "
                         f"got {properties}")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout}")
    if int(n_workers) < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    structures = list(atoms_list)
    method = spec_label(spec)
    result = LabelResult()
    t_wall = time.perf_counter()

    jobs = []
    for atoms in structures:
        clean = atoms.copy()
        clean.calc = None
        jobs.append((clean, spec, properties))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=f"labelling ({method})", unit="job")

    labelled: dict[int, Any] = {}

    def on_outcome(index: int, out) -> None:
        kind, reason = None, None
        if isinstance(out, JobFailure):
            kind, reason, elapsed = LabelFailure(out.kind.value), out.reason, out.elapsed
        else:
            elapsed = out["elapsed"]
            reason, kind = _check_finite(out, len(structures[index]))
        atoms = None
        if reason is None:
            atoms = _attach(structures[index], index, out, method)
            labelled[index] = atoms
        else:
            result.failures.append({"index": index, "reason": reason, "kind": kind.value,
                                    "elapsed": float(elapsed)})
        result.timings[index] = float(elapsed)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=len(result.failures))
        if callback is not None:
            callback(JobOutcome(index, atoms, reason, float(elapsed), kind))

    own = executor is None
    pool = (LocalExecutor(int(n_workers), threads=threads_per_worker, start_method=start_method)
            if own else as_executor(executor, int(n_workers)))
    try:
        # at most n_workers jobs at once on any executor (a Dask cluster runs walkers too)
        for index, out in pool.map_unordered(_label_job, jobs, timeout=timeout,
                                             limit=int(n_workers)):
            on_outcome(index, out)
    finally:
        if own:
            pool.close()
        if bar is not None:
            bar.close()
    result.labelled = [labelled[i] for i in sorted(labelled)]
    result.failures.sort(key=lambda f: f["index"])
    result.timings = dict(sorted(result.timings.items()))
    result.wall_time_s = time.perf_counter() - t_wall
    return result


# ----------------------------------------------------------------------------------------------
# post-filter
# ----------------------------------------------------------------------------------------------
def filter_by_max_force(atoms_list: Iterable, max_force: float = 20.0):
    """Split labelled structures into (kept, dropped) by their largest force component.

    A structure is dropped when any |F_ij| exceeds ``max_force`` (eV/Å; 20 in the paper's AL
    loop), when its forces are not finite, or when it has no force label. ``dropped`` is a list
    of ``{"index", "reason", "max_force"}`` where index is ``info["pool_index"]`` if present,
    else the position in ``atoms_list``; ``max_force`` is the largest |F| component (eV/Å, NaN if
    unavailable).
    """
    if not max_force > 0:
        raise ValueError(f"max_force must be positive (eV/Å), got {max_force}")
    kept, dropped = [], []
    for pos, atoms in enumerate(atoms_list):
        index = atoms.info.get(POOL_INDEX, pos)
        forces = None
        if atoms.calc is not None:
            forces = atoms.calc.results.get("forces")
        if forces is None and "forces" in atoms.arrays:
            forces = atoms.arrays["forces"]
        if forces is None:
            dropped.append({"index": index, "reason": "no force label", "max_force": math.nan})
            continue
        forces = np.asarray(forces, dtype=float)
        if not np.all(np.isfinite(forces)):
            dropped.append({"index": index, "reason": "non-finite forces", "max_force": math.nan})
            continue
        fmax = float(np.abs(forces).max()) if forces.size else 0.0
        if fmax > max_force:
            dropped.append({"index": index, "max_force": fmax,
                            "reason": f"force component {fmax:.3g} eV/Å > {max_force:g} eV/Å"})
        else:
            kept.append(atoms)
    return kept, dropped
