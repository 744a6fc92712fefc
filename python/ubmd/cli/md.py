"""``ubmd md``: (biased) MD with a ubmd model file through ASE.

  ubmd md MODEL.pt START.extxyz --out DIR [--ensemble nvt|npt] [--temperature K] [--steps N]
          [--tau-forces 0.25] [--tau-stress 0] [--weights H=0] [--threshold eV/Å] ...

Without a bias (``--tau-forces 0``, the default) this is plain MD with the MLIP. Writes
``DIR/candidates.extxyz`` (a frame every ``--sample-every`` steps, with uncertainties; by default
every 100 steps, or just the last step when ``--steps`` is below 100),
``DIR/trace.npz`` (u, max atomic u, energies, temperature, volume every ``--log-every`` steps)
and ``DIR/summary.json``. ``--threshold`` stops the run once an atomic uncertainty exceeds it,
``--runaway-factor`` once the run heats far above ``--temperature`` (a bias, or a model, that
drives it out of physics). Units: fs, K, bar, eV/Å.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from ..md.settings import ENSEMBLES, THERMOSTATS
from . import INPUT_ERRORS, HelpFormatter, fail

#: default steps between saved frames (fewer when --steps is smaller)
SAMPLE_EVERY = 100


def _weights(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        el, sep, w = item.partition("=")
        if not sep:
            raise ValueError(f"--weights takes El=w pairs, e.g. H=0, got {item!r}")
        try:
            out[el] = float(w)
        except ValueError:
            raise ValueError(f"--weights {item}: the weight is not a number") from None
    return out


#: MDSettings fields whose flag is not ``--`` + the field name with ``-`` for ``_``
_FLAGS = {"max_steps": "--steps"}
_SECTION = "md"  # the name the settings are checked under, replaced by flags in messages


def _flag_message(exc: BaseException) -> ValueError:
    """A settings error that names keys (``md.max_steps``) with this command's flags instead
    (``--steps``)."""
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
    return ValueError(re.sub(rf"{_SECTION}\.(\w+)",
                             lambda m: _FLAGS.get(m[1], "--" + m[1].replace("_", "-")), text))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ubmd md", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("model", help="model file written by `ubmd export` (model.pt)")
    p.add_argument("start", help="start structure (any format ASE reads; the first frame)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--ensemble", choices=ENSEMBLES, default="nvt", help="statistical ensemble")
    p.add_argument("--thermostat", choices=THERMOSTATS, default="langevin", help="nvt thermostat")
    p.add_argument("--temperature", type=float, default=300.0, metavar="K", help="temperature")
    p.add_argument("--pressure", type=float, default=0.0, metavar="BAR", help="pressure (npt)")
    p.add_argument("--timestep", type=float, default=0.5, metavar="FS", help="MD time step")
    p.add_argument("--steps", type=int, default=1000, metavar="N", help="MD steps")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs")
    p.add_argument("--tdamp", type=float, default=100.0, help="thermostat time constant, fs")
    p.add_argument("--pdamp", type=float, default=1000.0, help="barostat time constant, fs")
    p.add_argument("--tau-forces", type=float, default=0.0, help="bias strength tau_F (0: no bias)")
    p.add_argument("--tau-stress", type=float, default=0.0,
                   help="bias stress strength tau_sigma (needs --ensemble npt)")
    p.add_argument("--window", type=int, default=100, help="adaptive-scale window (evaluations)")
    p.add_argument("--weights", nargs="*", default=[], metavar="El=w",
                   help="per-element bias weights, e.g. H=0 (elements of the model; others 1)")
    p.add_argument("--threshold", type=float, default=None,
                   help="stop when an atomic uncertainty exceeds this (eV/Å); default: never")
    p.add_argument("--reflections", type=int, default=0,
                   help="k > 0: a frame over --threshold is saved and the run goes back to its "
                        "last saved frame with fresh velocities, k times; it stops at the "
                        "(k+1)-th crossing")
    p.add_argument("--sample-every", type=int, default=None,
                   help=f"steps between saved frames; default: {SAMPLE_EVERY} or --steps if fewer")
    p.add_argument("--log-every", type=int, default=10, help="steps between trace records")
    p.add_argument("--runaway-factor", type=float, default=1.5, metavar="F",
                   help="stop (stop_reason runaway) once the kinetic temperature exceeds F x "
                        "--temperature, or the level its thermal fluctuations reach once in "
                        "1e4 steps if higher (small systems; docs/al.md); 0: no guard")
    p.add_argument("--seed", type=int, default=0, help="seed of velocities and Langevin noise")
    return p


def _check_elements(model: str, start, weights: dict) -> None:
    """The start structure's elements and the --weights elements must be the model's."""
    from ..model_file import model_info

    known = list(model_info(model).species)
    missing = sorted(set(start.get_chemical_symbols()) - set(known))
    if missing:
        raise ValueError(f"the start structure has element(s) {', '.join(missing)} that the "
                         f"model {model} was not trained on (model elements: {', '.join(known)})")
    extra = [el for el in weights if el not in known]
    if extra:
        raise ValueError(f"--weights names element(s) {', '.join(extra)} not in the model "
                         f"(model elements: {', '.join(known)})")


def main(args: list[str] | None = None) -> int:
    ns = _parser().parse_args(args)
    from ..config import check
    from ..data import read_structures
    from ..md import MDSettings, WalkerTask, run_walker
    from ..md.starts import check_walker_starts
    from ..model_file import check_model_path

    sample_every = ns.sample_every if ns.sample_every is not None else min(SAMPLE_EVERY, ns.steps)
    threshold = math.inf if ns.threshold is None else ns.threshold
    try:
        check_model_path(ns.model)
        if not Path(ns.start).exists():
            raise FileNotFoundError(f"start structure not found: {ns.start}")
        weights = _weights(ns.weights)
        params = MDSettings(ensemble=ns.ensemble, thermostat=ns.thermostat,
                            temperature=ns.temperature, pressure=ns.pressure,
                            timestep=ns.timestep, max_steps=ns.steps, sample_every=sample_every,
                            log_every=ns.log_every, threshold=threshold,
                            reflections=ns.reflections,
                            tau_forces=ns.tau_forces, tau_stress=ns.tau_stress,
                            window=ns.window, weights=weights, friction=ns.friction,
                            tdamp=ns.tdamp, pdamp=ns.pdamp,
                            runaway_factor=ns.runaway_factor or None)
        try:
            check(params, _SECTION)
        except INPUT_ERRORS as exc:
            raise _flag_message(exc) from None
        start = read_structures(ns.start, index="0")[0]
        check_walker_starts([start], ns.ensemble, source=str(ns.start), option="--ensemble")
        _check_elements(ns.model, start, weights)
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
