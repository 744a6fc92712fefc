"""``ubmd evaluate MODEL.pt DATA.extxyz [-o DIR]``: errors, calibration metrics and plots.

Prints the metrics as JSON with their units (``units``): energies per atom in eV/atom, forces in
eV/Å, stresses in eV/Å^3 (and GPa), uncertainty summaries in the unit of their uncertainty.
With ``-o DIR`` it also writes:

  evaluation.json        the metrics, their units, and what every key means (``explain``)
  predictions.extxyz     every structure with the model's predictions (info ubmd_energy eV,
                         ubmd_stress eV/Å^3 Voigt, ubmd_uncertainty eV/atom; arrays ubmd_forces
                         eV/Å, ubmd_atomic_uncertainty eV/Å) and the labels (REF_energy,
                         REF_forces, REF_stress)
  parity.png             predicted against reference energy per atom, force and stress
                         components (GPa), with RMSE and MAE
  reliability_*.png, u_vs_error_*.png   calibration of the total and atomic uncertainties
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
    p.add_argument("-o", "--output", help="directory for evaluation.json, predictions.extxyz "
                                          "and the PNG plots (without it: no files, the metrics "
                                          "on stdout only)")
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
    print(json.dumps(res, indent=1, ensure_ascii=False))
    return 0
