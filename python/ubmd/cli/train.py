"""``ubmd train CONFIG.yaml``: train (an ensemble of) models, fit + calibrate u, export model.pt."""

from __future__ import annotations

import argparse
import json

import yaml

from ..config import TrainRunConfig, from_dict, load_yaml


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``section.key=value`` overrides (value parsed as YAML)."""
    for item in overrides:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return data


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog="ubmd train", description=__doc__)
    p.add_argument("config", help="YAML config (see docs/config.md)")
    p.add_argument("-o", "--output", help="output directory (overrides config 'output')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config entry, e.g. --set training.max_epochs=50")
    a = p.parse_args(args)
    data = apply_overrides(load_yaml(a.config), a.set)
    if a.output:
        data["output"] = a.output
    cfg = from_dict(TrainRunConfig, data)
    from ..workflow import train_from_config

    summary = train_from_config(cfg)
    print(json.dumps({k: v for k, v in summary.items() if k.startswith("errors") or k in (
        "model_file", "calibration", "train_time_s")}, indent=1))
    return 0
