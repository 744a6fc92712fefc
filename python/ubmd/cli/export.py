"""``ubmd export RUN_DIR -o model.pt``: (re-)export a trained run as a model file.

Re-fits the uncertainty state on the run's training split and re-calibrates on its validation
split (deterministic), so the dtype, the uncertainty kind or the feature kind can be changed.
Every AL round's model is a run too: ``ubmd export runs/al/round_003 -o m32.pt --dtype float32``.
"""

from __future__ import annotations

import argparse

from ..config import dtype_names
from ..keys import FEATURE_KINDS, UNCERTAINTY_KINDS
from . import INPUT_ERRORS, fail


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog="ubmd export", description=__doc__)
    p.add_argument("run_dir", help="directory written by `ubmd train`, or an AL round's "
                                   "directory (round_NNN or round_NNN/train)")
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.pt)")
    p.add_argument("--dtype", default="float64", choices=dtype_names())
    p.add_argument("--uncertainty", choices=UNCERTAINTY_KINDS)
    p.add_argument("--features", choices=FEATURE_KINDS)
    a = p.parse_args(args)
    try:
        from ..training.runs import export_run

        meta = export_run(a.run_dir, a.output, a.dtype, a.uncertainty, a.features)
    except INPUT_ERRORS as exc:
        return fail("export", exc)
    print(f"wrote {a.output}: species {meta['species']}, cutoff {meta['cutoff']} Å, "
          f"uncertainty {meta['uncertainty']}, dtype {meta['dtype']}")
    return 0
