"""``ubmd calibrate RUN_DIR [--method conformal] [--alpha 0.05]``: re-calibrate and re-export.

Fits the uncertainty state on the run's training split, the calibration constants on its
validation split, rewrites ``model.pt``, ``calibration.json`` and ``config.yaml`` in the run
directory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import CALIBRATION_METHODS, check, dtype_names, save_yaml, to_dict
from ..io import RunFiles
from . import INPUT_ERRORS, fail


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog="ubmd calibrate", description=__doc__)
    p.add_argument("run_dir", help="directory written by `ubmd train`")
    p.add_argument("--method", choices=CALIBRATION_METHODS,
                   help="calibration method (uncertainty.calibration; default: the run's)")
    p.add_argument("--alpha", type=float,
                   help="miscoverage level of the conformal calibration, in (0, 1): the "
                        "calibrated u covers 1 - alpha of the validation errors "
                        "(uncertainty.alpha; default: the run's, 0.05 unless set)")
    p.add_argument("--dtype", default=None, choices=dtype_names(),
                   help="dtype of the re-exported model.pt (default: the run's export_dtype)")
    a = p.parse_args(args)
    run = Path(a.run_dir)
    try:
        from ..training.runs import export_run, load_run_config

        cfg = load_run_config(run)
        if a.method:
            cfg.uncertainty.calibration = a.method
        if a.alpha is not None:
            cfg.uncertainty.alpha = a.alpha
        check(cfg)
        meta = export_run(run, RunFiles(run).model, a.dtype or cfg.export_dtype, cfg=cfg)
    except INPUT_ERRORS as exc:
        return fail("calibrate", exc)
    save_yaml(to_dict(cfg), RunFiles(run).config)
    cal = {"total": meta["calibration_total"], "atomic": meta["calibration_atomic"],
           "method": cfg.uncertainty.calibration, "alpha": cfg.uncertainty.alpha}
    with open(RunFiles(run).calibration, "w") as fh:
        json.dump(cal, fh, indent=1)
    print(json.dumps(cal, indent=1))
    return 0
