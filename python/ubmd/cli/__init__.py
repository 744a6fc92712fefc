"""The ``ubmd`` command: ``ubmd <subcommand> ...`` dispatches to ``ubmd.cli.<subcommand>.main``.

Every subcommand module exposes ``main(args=None) -> int`` so that tests can call it directly.
Bad input (missing files, invalid configs; :data:`INPUT_ERRORS`) ends with one line
``ubmd <cmd>: error: <message>`` on stderr and exit status 2 (:func:`fail`); any other exception
is a bug in ubmd and is shown with its traceback (exit status 1). Everywhere: ``-v``/``--verbose``
(debug messages, with the logger's name), ``-q``/``--quiet`` (warnings and errors only),
``--debug`` (``-v`` and the traceback of input errors too). Log lines and the live status line
go to stderr (:mod:`ubmd.progress`); results to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from ..errors import InputError, RunStopped

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


#: what bad input raises (config checks, missing or unreadable files, a missing optional
#: package), and runs that stopped with a message saying what to do; caught by every
#: subcommand's ``main``. A KeyError, TypeError, ImportError ... is a bug, shown with its
#: traceback (the input errors among them are :mod:`ubmd.errors` classes).
INPUT_ERRORS = (OSError, ValueError, InputError, RunStopped)

#: set by ``--debug``: tracebacks of input errors too
DEBUG = False
#: the global flags, taken out of the arguments wherever they stand
VERBOSE_FLAGS = {"-v": 1, "--verbose": 1, "-vv": 2, "-q": -1, "--quiet": -1, "--debug": 2}


def fail(command: str, exc: BaseException) -> int:
    """Print ``ubmd <command>: error: <message>`` to stderr (after the traceback, with
    ``--debug``); returns the exit status 2."""
    if DEBUG:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    print(f"ubmd {command}: error: {message}", file=sys.stderr)
    return 2


def bug(command: str, exc: BaseException) -> int:
    """Print the traceback of an exception that is not an input error and say that it is a bug;
    returns the exit status 1."""
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"ubmd {command}: internal error: {type(exc).__name__}: {exc}\n"
          "This is a bug in ubmd, not a problem with your input: please report it with the "
          "traceback above and the command line.", file=sys.stderr)
    return 1


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
    lines += ["", "options of every subcommand: -v/--verbose (debug messages), -q/--quiet "
              "(warnings and errors only), --debug (-v and tracebacks of input errors)",
              "", "`ubmd <subcommand> --help` describes each; `ubmd --version` prints the version.",
              "Docs: docs/index.md in the repository (Sphinx site: docs/; the guide to Python "
              "scripts: docs/python.md)."]
    return "\n".join(lines)


def take_verbosity(args: list[str]) -> tuple[list[str], int, bool]:
    """The arguments without the global flags, the verbosity they set and whether --debug."""
    rest, level, debug = [], 0, False
    for a in args:
        if a in VERBOSE_FLAGS:
            level = max(level, VERBOSE_FLAGS[a]) if VERBOSE_FLAGS[a] > 0 else min(level, -1)
            debug = debug or a == "--debug"
        else:
            rest.append(a)
    return rest, level, debug


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
    global DEBUG
    args, verbosity, DEBUG = take_verbosity(args)
    from ..progress import log_to_stderr, stop_logging_to_stderr

    handler = log_to_stderr(verbosity)
    try:
        return _run(args)
    finally:  # (main() may run in a process that goes on: tests, notebooks)
        stop_logging_to_stderr(handler)


def _run(args: list[str]) -> int:
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
    try:
        module = importlib.import_module(f"ubmd.cli.{name}")
        return int(module.main(args[1:]) or 0)
    except (SystemExit, KeyboardInterrupt, BrokenPipeError):
        raise
    except INPUT_ERRORS as exc:  # one a subcommand did not catch itself
        return fail(name, exc)
    except Exception as exc:  # noqa: BLE001 - a bug: say so, with the traceback
        return bug(name, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
