"""Score the alanine campaigns' own round models on the uniform (phi, psi) grid, by region.

``ala2_learning_curves`` retrains each data-set cut with one fixed recipe (two training seeds);
this scores what a campaign itself trained: the model of each finished round (one training,
the campaign's recipe), on the same test sets (grid by region and C7ax / alpha_L, 300 / 600 /
1200 K MD), without training anything. Cheap enough to follow a campaign while it runs.

    python -m benchmarks.ala2_round_models DIR [DIR ...] [--min-labels 120] [--tag TAG]

Writes ``benchmarks/results/ala2_round_models_<tag>.json`` (per campaign and round: labels,
energy and force RMSE per test set and region) and prints the grid force RMSE per round.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import RESULTS, ROOT
from .ala2_learning_curves import score_tests, test_sets
from .campaign_common import git_commit


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("campaigns", nargs="+", type=Path, help="campaign directories")
    p.add_argument("--min-labels", type=int, default=0, help="skip rounds with fewer labels")
    p.add_argument("--tag", default="uniform")
    return p.parse_args(argv)


def round_models(campaign: Path, min_labels: int = 0) -> list[tuple[int, int, Path]]:
    """(round, labels in its data set, training run directory) of every finished round of
    ``campaign`` that has a trained model, with at least ``min_labels`` labels."""
    from ubmd.al.layout import CampaignLayout

    layout = CampaignLayout(campaign)
    if not layout.config.exists():
        raise SystemExit(f"{campaign}: not a campaign directory (no {layout.config.name})")
    out = []
    for rl in layout.finished_rounds():
        n = int(rl.read_summary()["n_dataset"])
        if n >= min_labels and (rl.train_dir / "members.pt").exists():
            out.append((rl.index, n, rl.train_dir))
    return out


def main(argv=None) -> int:
    a = _args(argv)
    tests = test_sets()
    results = []
    for camp in a.campaigns:
        for r, n, run in round_models(camp, a.min_labels):
            scores = score_tests(run, tests)
            results.append({"campaign": camp.name, "round": r, "labels": n, "scores": scores})
            g, c = scores["grid"], scores["grid_c7ax"]
            print(f"{camp.name:26s} round {r:3d} labels {n:4d}: grid F {g['all']['F']:.3f} "
                  f"phi<0 {g['phi<0']['F']:.3f} phi>0 {g['phi>0']['F']:.3f} "
                  f"C7ax/alpha_L {c['c7ax_al']['F']:.3f} eV/Å", flush=True)
    out = RESULTS / f"ala2_round_models_{a.tag}.json"
    out.write_text(json.dumps({
        "what": "each finished round's own model (one training, the campaign's recipe) scored "
                "on the uniform grid and the MD test sets; force RMSE eV/A, energy meV/atom",
        "campaigns": [str(c.relative_to(ROOT)) if c.is_relative_to(ROOT) else str(c)
                      for c in a.campaigns],
        "git": git_commit(), "rounds": results}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
