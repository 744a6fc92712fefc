"""The ``ubmd`` command: ``ubmd <subcommand> ...`` dispatches to ``ubmd.cli.<subcommand>.main``.

Every subcommand module exposes ``main(args=None) -> int`` so that tests can call it directly.
Bad input (missing files, invalid configs) ends with one line ``ubmd <cmd>: error: <message>`` on
stderr and exit status 2 (:func:`fail`), not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMANDS = {
    "train": "train a model (or an ensemble) from a YAML config",
    "export": "export a trained model (+ uncertainty state) to a TorchScript model file",
    "calibrate": "fit the uncertainty state and calibrate it on the validation split",
    "evaluate": "errors and calibration metrics of a model on a dataset, with plots",
    "select": "select a diverse batch from a candidate pool",
    "al": "active-learning campaigns: run, resume, report",
    "analyze": "exploration analysis of walker outputs: coverage, ACF, histograms",
    "md": "run (biased) MD with a model through ASE",
}


#: what bad input raises (config checks, missing files); caught by every subcommand's ``main``
INPUT_ERRORS = (FileNotFoundError, ValueError, KeyError, TypeError)


def fail(command: str, exc: BaseException) -> int:
    """Print ``ubmd <command>: error: <message>`` to stderr; returns the exit status 2."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    print(f"ubmd {command}: error: {message}", file=sys.stderr)
    return 2


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the layout of the description and epilog, and appends ``(default: ...)`` to every
    option whose default is a value (not None, an empty list or a flag's False)."""

    def _get_help_string(self, action):
        default = action.default
        if default is None or isinstance(default, bool) or (isinstance(default, list)
                                                            and not default):
            return action.help or ""
        return super()._get_help_string(action)


def usage() -> str:
    lines = ["usage: ubmd <subcommand> [options]", "", "subcommands:"]
    lines += [f"  {name:10s} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", "`ubmd <subcommand> --help` describes each; `ubmd --version` prints the version."]
    return "\n".join(lines)


def main(args: list[str] | None = None) -> int:
    try:
        try:
            return _dispatch(list(sys.argv[1:] if args is None else args))
        finally:
            sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
    except BrokenPipeError:
        # the reader of stdout went away (`ubmd -h | head -3`): stop quietly, as `cat` does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _dispatch(args: list[str]) -> int:
    if not args:
        print(usage(), file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        from ubmd import __version__

        print(__version__)
        return 0
    name = args[0]
    if name not in SUBCOMMANDS:
        print(f"ubmd: unknown subcommand {name!r}; run `ubmd --help`", file=sys.stderr)
        return 2
    module = importlib.import_module(f"ubmd.cli.{name}")
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
