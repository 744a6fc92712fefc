"""Write the AL campaign configs of the MIL-53(Al) benchmark (``ubmd al run <config>``).

Matrix (the paper's MOF setup, docs/method.md, plus a bias-stress-only sampler and the forces +
stress sampler with the reference code's default tau_F): 5 samplers x 2 temperatures x 2
pressure settings = 20 campaigns, each 8 LAMMPS NPT walkers (Nose-Hoover + Parrinello-Rahman, full cell),
0.5 fs, at most 20 000 steps, a candidate every 200 steps, stop at a calibrated atomic
uncertainty of 1.5 eV/A or twice the model's own level on its labelled structures, whichever is
larger (``threshold_relative``; docs/benchmarks_mil53.md section 5), max_det batches of 8, GFN1-xTB labels (2x1x1 cell, 152 atoms), 512 labels.

* ``unbiased``: tau_F = tau_sigma = 0;
* ``bias_forces``: tau_F = 0.25, tau_sigma = 0;
* ``bias_forces_stress``: tau_F = 0.25, tau_sigma = 0.25;
* ``bias_stress``: tau_F = 0, tau_sigma = 0.25 (not in the paper: the bias acts on the cell only);
* ``bias_forces005_stress``: tau_F = 0.05 (the reference code's default), tau_sigma = 0.25;
* temperature 300 or 600 K for all walkers of a campaign;
* pressure ``p0``: 0 bar for all walkers; ``pm2500``: +2500 / -2500 bar alternating between walkers.

The metadynamics baseline is not an AL campaign: see benchmarks.mil53_metadynamics and
docs/benchmarks_mil53.md. Start structure: the GFN1-xTB-relaxed lp cell (round 0 = it + 7 copies
with +-0.02 A shifts and +-5 % strain), so that reaching np is the test.

Usage: python -m benchmarks.mil53.make_campaigns [--out benchmarks/mil53/campaigns]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

SAMPLERS = {
    "unbiased": (0.0, 0.0),
    "bias_forces": (0.25, 0.0),
    "bias_forces_stress": (0.25, 0.25),
    # the cell biased, the atoms not: the sampler that breathed in the walker measurement
    # (benchmarks.mil53.walker_breathing, docs/benchmarks_mil53.md)
    "bias_stress": (0.0, 0.25),
    # bias forces and stress with the reference code's default tau_F = 0.05: on single walkers
    # it breathes like bias_stress and does not run away (walker_breathing --tag _taus)
    "bias_forces005_stress": (0.05, 0.25),
}
TEMPERATURES = (300, 600)
PRESSURES = {"p0": 0.0, "pm2500": [2500.0, -2500.0]}


def campaign(sampler: str, temperature: int, pressure_key: str, start: str) -> dict:
    tau_f, tau_s = SAMPLERS[sampler]
    name = f"mil53_{sampler}_{temperature}K_{pressure_key}"
    return {
        "output": f"../../../runs/mil53_al/{name}",  # relative to the config file
        "label_budget": 512,
        "max_rounds": 100,
        "initial": {"structures": start, "n_perturbed": 7, "displacement": 0.02, "strain": 0.05},
        "reference": {"calculator": "gfn1-xtb", "n_workers": 2, "timeout_s": 900,
                      "max_force": 20.0, "stress": True},
        "walkers": {
            "engine": "lammps", "n_walkers": 8, "start_from": "previous", "ensemble": "npt",
            "temperature": float(temperature), "pressure": PRESSURES[pressure_key],
            "timestep": 0.5, "max_steps": 20000, "sample_every": 200, "log_every": 20,
            "threshold": 1.5, "threshold_relative": 2.0, "reflections": 0,  # the paper's stop
            "tau_forces": tau_f, "tau_stress": tau_s, "window": 100,
            "weights": {"H": 0.0}, "tdamp": 100.0, "pdamp": 1000.0,
        },
        "executor": {"kind": "local", "n_workers": 2},
        "selection": {"method": "max_det", "batch_size": 8},
        "data": {"valid_fraction": 0.1},
        "model": {"cutoff": 5.0, "n_radial": 8, "n_basis": 12, "hidden": [128, 128]},
        # lr 3e-2 decaying to 3e-4: trains 1.5-2x better than 3e-3 (docs/accuracy.md, alanine)
        "training": {"max_epochs": 500, "batch_size": 8, "lr": 0.03, "lr_final": 0.0003,
                     "patience": 100, "dtype": "float32", "progress": False,
                     "weight_virial": 0.01},
        "uncertainty": {"kind": "posterior", "features": "sketch", "n_sketch": 512},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/mil53/campaigns")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = "../../../examples/mil53/data/mil53_lp_gfn1_2x1x1.extxyz"  # relative to the config
    for sampler in SAMPLERS:
        for temperature in TEMPERATURES:
            for pkey in PRESSURES:
                cfg = campaign(sampler, temperature, pkey, start)
                path = out / f"{Path(cfg['output']).name}.yaml"
                header = (f"# MIL-53(Al) AL campaign (written by python -m benchmarks.mil53.make_campaigns)\n"
                          f"#   ubmd al run {path}\n")
                path.write_text(header + yaml.safe_dump(cfg, sort_keys=False))
                print(path)


if __name__ == "__main__":
    main()
