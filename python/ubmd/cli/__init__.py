"""The ``ubmd`` command: ``ubmd <subcommand> ...`` dispatches to ``ubmd.cli.<subcommand>.main``.

Every subcommand module exposes ``main(args=None) -> int`` so that tests can call it directly.
Bad input (missing files, invalid configs) ends with one line ``ubmd <cmd>: error: <message>`` on
stderr and exit status 2 (:func:`fail`), not a traceback.
"""

from __future__ import annotations

import importlib
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


def main(args: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    if not args or args[0] in ("-h", "--help"):
        print("usage: ubmd <subcommand> [options]\n\nsubcommands:")
        for name, text in SUBCOMMANDS.items():
            print(f"  {name:10s} {text}")
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
