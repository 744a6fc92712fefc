"""LAMMPS cost per MD step of the final models of AL campaigns, measured side by side.

For each campaign directory: its last round's model file, run from the start structure of its
first LAMMPS walker (round 0, walker 0: ``start.data``, its ``boundary``) without uncertainty
(``uncertainty none``) and with the walkers' bias forces (``window 2``, so the bias is on from
the third step rather than after 100 steps). The runs are interleaved (repeat x campaign x mode)
in one call; median of ``--repeats`` loop times (``ubmd.analysis.read_loop_time``) after a
100-step warm-up, one process, one thread each. Campaigns without a LAMMPS walker (ASE engine,
no sampling round) are left out. The alanine branch campaigns use it
(``python -m benchmarks.ala2_campaigns --size branch``).

    python -m benchmarks.campaign_md_cost runs/ala2_campaigns/branch/*_s0 --steps 1000 \\
        --out runs/cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from ubmd.al.archive import load_rounds
from ubmd.al.layout import CampaignLayout
from ubmd.analysis import read_loop_time
from ubmd.md.lammps_engine import DATA as WALKER_DATA
from ubmd.md.lammps_engine import DECK as WALKER_DECK
from ubmd.model_file import model_info
from ubmd.plugin import find_executable, plugin_path

COST_MODES = {"none": "uncertainty none",
              "biased": "bias_forces 0.25 window 2 weights H 0"}


def cost_deck(plugin: Path, walker_dir: Path, model: Path, style: str, steps: int) -> str:
    """A LAMMPS input that times ``steps`` steps of ``model`` from the walker's start."""
    deck0 = (walker_dir / WALKER_DECK).read_text().splitlines()
    boundary = next((line for line in deck0 if line.startswith("boundary")), "boundary s s s")
    return "\n".join([
        "units metal", "atom_style atomic", "atom_modify map array", boundary,
        f"plugin load {plugin}", f"read_data {walker_dir / WALKER_DATA}",
        f"pair_style ubmd {style}", f"pair_coeff * * {model} {' '.join(model_info(model).species)}",
        "neighbor 1 bin", "timestep 0.0005",
        "velocity all create 300 4928 mom yes rot yes dist gaussian",
        "fix integrate all nve", "fix thermostat all langevin 300 300 0.1 4928",
        "fix zeromom all momentum 10 linear 1 1 1",
        "thermo 100", "run 100", f"run {steps}", ""])


def lammps_cost(models: dict, work: Path, steps: int = 1000, repeats: int = 3) -> dict:
    """``ms_per_step`` {campaign: {mode: median ms per step}} of ``models`` (name -> campaign
    directory; decks and logs under ``work``), and ``biased_relative_to_sketch`` (each biased
    step over the one of ``biased_300K``); ``error`` when LAMMPS or the plugin is missing."""
    lmp = find_executable("lmp")
    try:
        plugin = plugin_path()
    except FileNotFoundError:
        plugin = None
    if lmp is None or plugin is None:
        return {"error": "LAMMPS (lmp) or the ubmd plugin not found; build with scripts/build_plugin.sh"}
    work.mkdir(parents=True, exist_ok=True)
    jobs = {}
    for name, out in models.items():
        rounds = load_rounds(out)
        layout = CampaignLayout(out)
        walker = layout.round(0).walker_dir(0)
        if not rounds or not (walker / WALKER_DECK).exists():
            continue  # no LAMMPS walker (ASE engine, or no sampling round): nothing to time
        model = layout.round(rounds[-1]["round"]).model_file
        for mode, style in COST_MODES.items():
            deck = work / f"in.{name}.{mode}.lmp"
            deck.write_text(cost_deck(plugin, walker, model, style, steps))
            jobs[(name, mode)] = deck
    times: dict = {k: [] for k in jobs}
    for rep in range(repeats):
        for (name, mode), deck in jobs.items():
            log = deck.with_suffix(f".{rep}.log")
            try:
                subprocess.run([lmp, "-in", str(deck), "-log", str(log), "-screen", "none", "-nocite"],
                               check=False, cwd=work, env=dict(os.environ, OMP_NUM_THREADS="1"),
                               timeout=600)
            except subprocess.TimeoutExpired:
                continue
            lt = read_loop_time(log, which=-1)
            if lt and lt[1] == steps:
                times[(name, mode)].append(1000.0 * lt[0] / steps)
    res: dict = {"steps": steps, "repeats": repeats, "modes": COST_MODES, "ms_per_step": {}}
    for (name, mode), t in times.items():
        res["ms_per_step"].setdefault(name, {})[mode] = statistics.median(t) if t else None
    base = res["ms_per_step"].get("biased_300K", {}).get("biased")
    res["biased_relative_to_sketch"] = {n: (v.get("biased") / base if base and v.get("biased") else None)
                                        for n, v in res["ms_per_step"].items()}
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("campaigns", nargs="+", help="campaign directories (named by their folder)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", default=None, help="decks and logs (default: next to --out)")
    p.add_argument("--out", default="runs/campaign_md_cost.json", help="results JSON")
    a = p.parse_args(argv)
    out = Path(a.out)
    work = Path(a.work) if a.work else out.with_suffix("")
    res = lammps_cost({Path(c).name: Path(c) for c in a.campaigns}, work, a.steps, a.repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    for name, by_mode in res.get("ms_per_step", {}).items():
        print(f"{name:32s} " + "  ".join(f"{m} {v:.2f} ms/step" if v else f"{m} -"
                                         for m, v in by_mode.items()))
    print(res.get("error") or f"wrote {out}", file=sys.stderr if "error" in res else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
