"""``ubmd calibrate RUN_DIR [--method conformal] [--alpha 0.05]``: re-calibrate and re-export.

Fits the uncertainty state on the run's training split, the calibration constants on its
validation split, rewrites ``model.pt``, ``calibration.json`` and ``config.yaml`` in the run
directory (``ubmd train``'s, or an AL round's ``train/``: ``ubmd calibrate runs/al/round_003``).
Prints the calibration constants (dimensionless factors of the raw uncertainties).
"""

from __future__ import annotations

import argparse
import json

from ..config import CALIBRATION_METHODS, dtype_names
from . import INPUT_ERRORS, fail


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog="ubmd calibrate", description=__doc__)
    p.add_argument("run_dir", help="directory written by `ubmd train`, or an AL round's "
                                   "directory (round_NNN or round_NNN/train)")
    p.add_argument("--method", choices=CALIBRATION_METHODS,
                   help="calibration method (uncertainty.calibration; default: the run's)")
    p.add_argument("--alpha", type=float,
                   help="miscoverage level of the conformal calibration, in (0, 1): the "
                        "calibrated u covers 1 - alpha of the validation errors "
                        "(uncertainty.alpha; default: the run's, 0.05 unless set)")
    p.add_argument("--dtype", default=None, choices=dtype_names(),
                   help="dtype of the re-exported model.pt (default: the run's export_dtype)")
    a = p.parse_args(args)
    try:
        from ..training.runs import calibrate_run

        cal = calibrate_run(a.run_dir, a.method, a.alpha, a.dtype)
    except INPUT_ERRORS as exc:
        return fail("calibrate", exc)
    print(json.dumps(cal, indent=1))
    return 0
