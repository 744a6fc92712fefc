"""``ubmd evaluate MODEL.pt DATA.extxyz [-o DIR]``: errors, calibration metrics and plots.

Prints the metrics as JSON. Plots (reliability and u-vs-error PNGs) and
``evaluation.json`` are written only with ``-o DIR``.
"""

from __future__ import annotations

import argparse
import json

from . import INPUT_ERRORS, fail


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog="ubmd evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model file written by `ubmd export` / `ubmd train`")
    p.add_argument("data", nargs="+", help="labelled structures (extxyz or anything ASE reads)")
    p.add_argument("-o", "--output", help="directory for evaluation.json and the PNG plots "
                                          "(without it: no files, the metrics on stdout only)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="miscoverage level of the reported coverage metrics: the target coverage "
                        "is 1 - alpha (the model's calibration is not changed; default 0.05)")
    for name, default in (("energy", "energy"), ("forces", "forces"), ("stress", "stress"),
                          ("virial", "virial")):
        p.add_argument(f"--{name}-key", default=default,
                       help=f"name of the {name} label (calculator result, info or array; "
                            f"default {default})")
    a = p.parse_args(args)
    try:
        from ..model_file import check_model_path

        check_model_path(a.model)
        if not 0 < a.alpha < 1:
            raise ValueError(f"--alpha must be in (0, 1), got {a.alpha}")
        from ..data import read_structures
        from ..evaluation import evaluate_model_file

        frames = [f for path in a.data for f in read_structures(path)]
        keys = {"energy_key": a.energy_key, "forces_key": a.forces_key,
                "stress_key": a.stress_key, "virial_key": a.virial_key}
        res = evaluate_model_file(a.model, frames, a.alpha, a.output, label_keys=keys)
    except INPUT_ERRORS as exc:
        return fail("evaluate", exc)
    print(json.dumps(res, indent=1))
    return 0
