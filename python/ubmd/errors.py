"""The exceptions that mean "the input is wrong" or "the run stopped, and the message says how to
go on", as opposed to a bug. ``ubmd`` on the command line prints these as one line
(``ubmd <command>: error: ...``, exit status 2) and everything else as a bug, with its traceback
(exit status 1); ``--debug`` shows the traceback of both.

Each is a subclass of the built-in exception its callers caught before (``ValueError``,
``KeyError``, ``TypeError``, ``RuntimeError``), so ``except ValueError`` still works.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a file, a setting, an argument (the message names it)."""


class MissingKeyError(InputError, KeyError):
    """A name that the input does not have: a column of a log, a value of a frame."""

    def __str__(self) -> str:  # KeyError quotes its message
        return str(self.args[0]) if self.args else ""


class InputTypeError(InputError, TypeError):
    """Input of the wrong kind (a calculator spec that is neither a name nor a mapping, integer
    features where floating-point ones are needed)."""


class MissingImportError(InputError, ImportError):
    """A package or module that the input asks for and that cannot be imported (an optional
    dependency such as tblite or dask, a calculator named by ``import: module:Class``). Other
    ImportErrors are bugs."""


class RunStopped(RuntimeError):
    """A run (a campaign, a label stage) stopped for a reason that its message explains,
    including what to do (fix the calculator and resume, free the directory ...)."""
