"""The settings of the reference labeller (the ``reference`` section of an AL config; usable on
its own for :func:`ubmd.labelling.label_checkpointed`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..config import setting


@dataclass
class ReferenceConfig:
    """The reference ("DFT") labeller: an ASE calculator spec (see ubmd.labelling)."""

    calculator: Any = setting(None, path="calculator")  # "emt", "gfn2-xtb",
    # {"import": "pkg.mod:Class", "kwargs": {...}}, {"import": "file.py:Class"}
    n_workers: int = setting(2, ge=1)
    timeout_s: Optional[float] = setting(None, gt=0)  # per structure; None = no limit
    max_force: float = setting(20.0, gt=0)  # eV/Å; labels with any |F| component above are dropped
    stress: bool = True  # label the stress of fully periodic cells (needed for NPT training)
