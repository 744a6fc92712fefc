"""``ubmd train CONFIG.yaml``: train (an ensemble of) models, fit + calibrate u, export model.pt.

Every key of the config: docs/config.md. Relative paths in CONFIG.yaml are relative to its
directory; paths given on the command line (``-o``, ``--set data.train=...``) are relative to
the working directory. The run's ``config.yaml`` stores them absolute.
"""

from __future__ import annotations

import argparse
import json

from ..config import load_train_config, require_files
from . import INPUT_ERRORS, fail


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog="ubmd train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config (see docs/config.md)")
    p.add_argument("-o", "--output", help="output directory (overrides config 'output')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config entry, e.g. --set training.max_epochs=50")
    a = p.parse_args(args)
    try:
        cfg = load_train_config(a.config, a.set, a.output)
        require_files(cfg.data.train, "data.train")  # before anything is written to the output
        from ..training import train_from_config

        summary = train_from_config(cfg)
    except INPUT_ERRORS as exc:
        return fail("train", exc)
    print(json.dumps({k: v for k, v in summary.items() if k.startswith("errors") or k in (
        "model_file", "calibration", "train_time_s")}, indent=1))
    return 0
