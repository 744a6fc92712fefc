"""The paper's benchmarks and the performance measurements of ubmd (not part of the package).

Every script is a module of this package; run it from the repository root, e.g.::

    python -m benchmarks.ala2_campaigns --size tiny
    python -m benchmarks.mil53.make_campaigns --help

The scripts use ubmd's public API only (``import ubmd...``); what several of them share and is
benchmark plumbing only (size presets, driver command lines, results files) lives in
:mod:`.campaign_common` and in the speed scripts they import (``md_speed``, ``blas_binding``).
Inputs: ``benchmarks/data/`` (start structures), ``examples/*/data/`` (labelled data sets),
``benchmarks/configs/`` and ``benchmarks/mil53/campaigns/`` (campaign configs); outputs:
``benchmarks/results/`` (JSON), ``docs/figures/``, campaign directories under ``runs/`` (not in
git). What each measures and found: docs/benchmarks.md, docs/benchmarks_mil53.md,
docs/performance.md, docs/accuracy.md, benchmarks/NOTES.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"  # benchmark inputs (start structures, dihedral indices)
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = ROOT / "docs" / "figures"


def module_command(module: str, *args) -> list[str]:
    """The command line that runs ``benchmarks.<module>`` with this Python (use with
    :func:`module_env`, so that it works from any working directory)."""
    return [sys.executable, "-m", f"benchmarks.{module}", *map(str, args)]


def module_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's environment) with the repository root first on
    ``PYTHONPATH``, for subprocesses started with :func:`module_command`."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p])
    return env
