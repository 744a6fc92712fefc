"""``ubmd md``: (biased) MD with a ubmd model file through ASE.

  ubmd md MODEL.pt START.extxyz --out DIR [--ensemble nvt|npt] [--temperature K] [--steps N]
          [--tau-forces 0.25] [--tau-stress 0] [--weights H=0] [--threshold eV/Å] ...

Without a bias (``--tau-forces 0``, the default) this is plain MD with the MLIP. Writes
``DIR/candidates.extxyz`` (a frame every ``--sample-every`` steps, with uncertainties),
``DIR/trace.npz`` (u, max atomic u, energies, temperature, volume every ``--log-every`` steps)
and ``DIR/summary.json``. ``--threshold`` stops the run once an atomic uncertainty exceeds it.
Units: fs, K, bar, eV/Å.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..al.config import ENSEMBLES, THERMOSTATS
from ..al.initial import check_walker_starts
from . import INPUT_ERRORS, fail


def _weights(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        el, sep, w = item.partition("=")
        if not sep:
            raise ValueError(f"--weights takes El=w pairs, e.g. H=0, got {item!r}")
        out[el] = float(w)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ubmd md", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model file written by `ubmd export` (model.pt)")
    p.add_argument("start", help="start structure (any format ASE reads; the first frame)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--ensemble", choices=ENSEMBLES, default="nvt")
    p.add_argument("--thermostat", choices=THERMOSTATS, default="langevin")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--pressure", type=float, default=0.0, help="bar (npt)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs")
    p.add_argument("--tdamp", type=float, default=100.0, help="thermostat time constant, fs")
    p.add_argument("--pdamp", type=float, default=1000.0, help="barostat time constant, fs")
    p.add_argument("--tau-forces", type=float, default=0.0, help="bias strength tau_F")
    p.add_argument("--tau-stress", type=float, default=0.0, help="bias stress strength (npt)")
    p.add_argument("--window", type=int, default=100, help="adaptive-scale window (evaluations)")
    p.add_argument("--weights", nargs="*", default=[], help="per-element bias weights, El=w")
    p.add_argument("--threshold", type=float, default=math.inf,
                   help="stop when an atomic uncertainty exceeds this (eV/Å); default: never")
    p.add_argument("--sample-every", type=int, default=100, help="steps between saved frames")
    p.add_argument("--log-every", type=int, default=10, help="steps between trace records")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(args: list[str] | None = None) -> int:
    ns = _parser().parse_args(args)
    from ..al.config import WalkerConfig, validate_walker
    from ..al.walkers import WalkerTask, run_walker
    from ..data import read_structures

    try:
        params = WalkerConfig(engine="ase", ensemble=ns.ensemble, thermostat=ns.thermostat,
                              temperature=ns.temperature, pressure=ns.pressure,
                              timestep=ns.timestep, max_steps=ns.steps,
                              sample_every=ns.sample_every, log_every=ns.log_every,
                              threshold=ns.threshold, tau_forces=ns.tau_forces,
                              tau_stress=ns.tau_stress, window=ns.window,
                              weights=_weights(ns.weights), friction=ns.friction,
                              tdamp=ns.tdamp, pdamp=ns.pdamp, seed=ns.seed)
        validate_walker(params)
        if not Path(ns.model).is_file():
            raise FileNotFoundError(f"model file not found: {ns.model}")
        start = read_structures(ns.start, index="0")[0]
        check_walker_starts([start], ns.ensemble, source=str(ns.start), option="--ensemble")
    except INPUT_ERRORS as exc:
        return fail("md", exc)
    task = WalkerTask(index=0, engine="ase", model_file=str(Path(ns.model).resolve()), start=start,
                      workdir=str(Path(ns.out).resolve()), temperature=ns.temperature,
                      pressure=ns.pressure, seed=ns.seed, params=params)
    summary = run_walker(task)
    if summary.get("stop_reason") == "error":
        print(f"ubmd md: error: {summary.get('error')}", file=sys.stderr)
        return 1
    print(json.dumps({k: summary[k] for k in ("stop_reason", "n_steps", "time_fs",
                                              "max_atomic_uncertainty", "n_candidates")
                      if k in summary}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
