"""``ubmd al``: active-learning campaigns.

  ubmd al run CONFIG.yaml [--output DIR]   start (or continue, with the same config) a campaign
                                           (keys: docs/config.md; relative paths in CONFIG.yaml
                                           are relative to its directory, --output to the
                                           working directory)
  ubmd al resume DIR                       continue the campaign in DIR from its last finished stage
        [--label-budget N] [--max-rounds N]  ... with a new budget: a finished campaign goes on
                                           from its last round (nothing is redone)
  ubmd al report DIR [--out PLOTS]         learning curves, calibration, walker stops, volumes,
                                           coverage (PNG) + report.json

While a round runs, a status line on stderr shows its stage and progress (labels done and
failed, training epochs and validation errors, walker steps, temperatures and stops); when
stderr is not a terminal (a batch job's log) it is a log line every --progress-every seconds.
One line per finished round goes to stderr and DIR/log.txt.
"""

from __future__ import annotations

import argparse
import sys

from . import INPUT_ERRORS, fail


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ubmd al", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a campaign from a YAML config")
    run.add_argument("config", help="campaign YAML (keys: docs/config.md)")
    run.add_argument("--output", help="output directory (overrides `output:` in the config)")
    res = sub.add_parser("resume", help="continue a campaign from its directory")
    res.add_argument("directory")
    res.add_argument("--label-budget", type=int, default=None, metavar="N",
                     help="new label_budget (reference calculations in all, initial data "
                          "included): extend a finished campaign, or stop it sooner")
    res.add_argument("--max-rounds", type=int, default=None, metavar="N", help="new max_rounds")
    for sp in (run, res):
        sp.add_argument("--progress-every", type=float, default=60.0, metavar="S",
                        help="seconds between progress lines when stderr is not a terminal "
                             "(default 60; 0: none)")
    rep = sub.add_parser("report", help="plots and a JSON summary of a campaign")
    rep.add_argument("directory")
    rep.add_argument("--out", help="where the plots go (default DIR/report)")
    return p


def main(args: list[str] | None = None) -> int:
    ns = _parser().parse_args(args)
    from ..al import load_al_config, resume_campaign, run_campaign
    from ..signals import terminate_children_on_exit

    try:
        with terminate_children_on_exit():
            return _dispatch(ns, load_al_config, resume_campaign, run_campaign)
    except INPUT_ERRORS as exc:
        return fail(f"al {ns.command}", exc)


def _dispatch(ns, load_al_config, resume_campaign, run_campaign) -> int:
    if ns.command == "report":
        from ..al.report import write_report

        for path in write_report(ns.directory, ns.out):
            print(path)
        return 0
    if ns.command == "run":
        cfg = load_al_config(ns.config)
        if ns.output:
            cfg.output = ns.output
        result = run_campaign(cfg, progress=ns.progress_every or False)
    else:
        result = resume_campaign(ns.directory, progress=ns.progress_every or False,
                                 label_budget=ns.label_budget, max_rounds=ns.max_rounds)
    print(f"campaign {'finished' if result.get('finished') else 'stopped'}: "
          f"{result.get('n_rounds')} rounds, {result.get('labels_used')} labels")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
