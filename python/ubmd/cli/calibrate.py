"""``ubmd calibrate RUN_DIR [--method conformal] [--alpha 0.05]``: re-calibrate and re-export.

Fits the uncertainty state on the run's training split, the calibration constants on its
validation split, rewrites ``model.pt`` and ``calibration.json`` in the run directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import load_yaml, save_yaml


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog="ubmd calibrate", description=__doc__)
    p.add_argument("run_dir")
    p.add_argument("--method", choices=["conformal", "max_likelihood", "log_regression"])
    p.add_argument("--alpha", type=float)
    p.add_argument("--dtype", default=None, choices=["float32", "float64"])
    a = p.parse_args(args)
    run = Path(a.run_dir)
    data = load_yaml(run / "config.yaml")
    unc = data.setdefault("uncertainty", {})
    if a.method:
        unc["calibration"] = a.method
    if a.alpha is not None:
        unc["alpha"] = a.alpha
    save_yaml(data, run / "config.yaml")
    from .export import export_run

    meta = export_run(run, run / "model.pt", a.dtype or data.get("export_dtype", "float64"))
    import json

    cal = {"total": meta["calibration_total"], "atomic": meta["calibration_atomic"],
           "method": unc.get("calibration", "conformal"), "alpha": unc.get("alpha", 0.05)}
    with open(run / "calibration.json", "w") as fh:
        json.dump(cal, fh, indent=1)
    print(json.dumps(cal, indent=1))
    return 0
