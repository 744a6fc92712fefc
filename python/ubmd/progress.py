"""Logging and live progress, for the command line and for driver scripts.

* ``logging``: every module logs to a child of the ``"ubmd"`` logger. :func:`log_to_stderr`
  sends it to stderr (what ``ubmd`` does; ``-v``/``--debug`` lower the level); a library user
  may configure ``logging`` as for any package instead. Warnings are printed as one line
  (``warning: message``), without the source line that Python's default shows.
* Heartbeats: a job that runs long, in whatever process or machine (a walker, a training
  member), writes its state now and then to a small JSON file (:class:`Heartbeat`, at most once
  a second, atomically); whoever watches (a campaign's driver) reads them back
  (:func:`read_heartbeat`). Files, not pipes, so the same works for local worker processes and
  for Dask workers on a cluster that shares the campaign directory.
* :class:`StatusLine`: one line of status that is redrawn in place on a terminal and, when
  stderr is not a terminal (a batch job's log, ``nohup``), logged at most every ``interval_s``
  seconds when it changed; log records are printed above it. :class:`Monitor` redraws it from a
  function polled in a background thread.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

LOGGER = "ubmd"
logger = logging.getLogger(LOGGER)


# ---------------------------------------------------------------------------------- logging
class _Formatter(logging.Formatter):
    """``message`` for INFO, ``warning: message`` / ``error: message`` above, and the logger's
    name in front at DEBUG level (``-v -v`` / ``--debug``)."""

    def __init__(self, debug: bool = False):
        super().__init__()
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.name == "py.warnings":  # already "warning: ..." (_format_warning)
            text = text.strip()
        elif record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        if self.debug:
            text = f"[{record.name}] {text}"
        if record.exc_info and self.debug:
            text += "\n" + self.formatException(record.exc_info)
        return text


class StatusHandler(logging.StreamHandler):
    """A stream handler that keeps a status line (:class:`StatusLine`) below the log records:
    the line is erased before a record is written and drawn again after it."""

    def __init__(self, stream=None):
        super().__init__(stream if stream is not None else sys.stderr)
        self.status: StatusLine | None = None

    def emit(self, record: logging.LogRecord) -> None:
        status = self.status
        if status is not None:
            status.erase()
        super().emit(record)
        if status is not None:
            status.redraw()


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """One line per warning: ``warning: <message>`` (UserWarning) or ``warning (Category):``."""
    kind = "" if category is UserWarning else f" ({category.__name__})"
    return f"warning{kind}: {message}\n"


def log_to_stderr(verbosity: int = 0, stream=None) -> StatusHandler:
    """Send the ``ubmd`` loggers to stderr: INFO and above (``verbosity`` 0), DEBUG with the
    logger names (1 or more), WARNING only (-1). Python warnings go the same way, one line each
    (``warning: message``, no source line), so that they print above a status line. Replaces
    a handler this function installed before; returns the handler."""
    handler = StatusHandler(stream)
    handler.setFormatter(_Formatter(debug=verbosity >= 1))
    for name in (LOGGER, "py.warnings"):
        log = logging.getLogger(name)
        for h in list(log.handlers):
            if isinstance(h, StatusHandler):
                log.removeHandler(h)
        log.addHandler(handler)
        log.propagate = False
    logging.getLogger(LOGGER).setLevel(logging.DEBUG if verbosity >= 1 else logging.WARNING
                                       if verbosity < 0 else logging.INFO)
    handler.formatwarning = warnings.formatwarning  # restored by stop_logging_to_stderr
    warnings.formatwarning = _format_warning
    logging.captureWarnings(True)
    return handler


def stop_logging_to_stderr(handler: StatusHandler) -> None:
    """Undo :func:`log_to_stderr` (for a driver script's campaign that set it up alone)."""
    for name in (LOGGER, "py.warnings"):
        logging.getLogger(name).removeHandler(handler)
    logging.captureWarnings(False)
    if getattr(handler, "formatwarning", None) is not None:
        warnings.formatwarning = handler.formatwarning


def has_output() -> bool:
    """Whether records of the ``ubmd`` logger reach a handler (its own or an ancestor's)."""
    log = logging.getLogger(LOGGER)
    return log.hasHandlers()


def status_handler() -> StatusHandler | None:
    """The handler installed by :func:`log_to_stderr`, if any."""
    for h in logging.getLogger(LOGGER).handlers:
        if isinstance(h, StatusHandler):
            return h
    return None


# ---------------------------------------------------------------------------------- heartbeats
class Heartbeat:
    """Writes ``{**fields, "time": t}`` as JSON to ``path``, at most every ``every_s`` seconds
    unless ``force`` (the last beat of a job); atomic (temporary file + rename). Picklable, so a
    job can carry it to a worker process. Never raises: progress must not break a run."""

    def __init__(self, path: str | Path, every_s: float = 1.0):
        self.path = str(path)
        self.every_s = float(every_s)
        self._last = 0.0

    def __getstate__(self):
        return {"path": self.path, "every_s": self.every_s}

    def __setstate__(self, state):
        self.__init__(state["path"], state["every_s"])

    def __call__(self, force: bool = False, **fields) -> None:
        now = time.time()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            # serialised first: a value JSON cannot hold leaves no temporary file behind;
            # numpy scalars (a step or temperature from an array) are written as numbers
            text = json.dumps({**fields, "time": now}, default=_json_scalar)
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
        except (OSError, TypeError, ValueError):  # a full disk, a value JSON cannot hold
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _json_scalar(value):
    """A numpy scalar as a Python number (json's ``default``); TypeError for anything else."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_heartbeat(path: str | Path) -> dict | None:
    """The last beat written to ``path`` (None if there is none or it cannot be read)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class EpochHeartbeat:
    """A training progress callback ``(member, epoch, n_epochs, record)`` that writes one
    heartbeat file per ensemble member into ``directory`` (``member_K.json``: member, epoch,
    n_epochs and the validation errors of the last validated epoch). Picklable."""

    def __init__(self, directory: str | Path, every_s: float = 1.0):
        self.directory = str(directory)
        self.every_s = float(every_s)
        self._beats: dict[int, Heartbeat] = {}

    def __getstate__(self):
        return {"directory": self.directory, "every_s": self.every_s}

    def __setstate__(self, state):
        self.__init__(state["directory"], state["every_s"])

    def __call__(self, member: int, epoch: int, n_epochs: int, record: dict | None = None,
                 done: bool = False) -> None:
        beat = self._beats.get(member)
        if beat is None:
            beat = self._beats[member] = Heartbeat(
                Path(self.directory) / f"member_{member}.json", self.every_s)
        errors = {k: v for k, v in (record or {}).items()
                  if k in ("energy_rmse", "forces_rmse") and isinstance(v, (int, float))}
        beat(force=done, member=member, epoch=epoch, n_epochs=n_epochs, done=done, **errors)

    def read(self) -> list[dict]:
        """The members' last beats, by member."""
        beats = [read_heartbeat(p) for p in sorted(Path(self.directory).glob("member_*.json"))]
        return sorted((b for b in beats if b), key=lambda b: b.get("member", 0))


# ---------------------------------------------------------------------------------- status line
class StatusLine:
    """One line of status on ``stream``: redrawn in place on a terminal; elsewhere (a file, a
    pipe) logged through ``logger`` at most every ``interval_s`` seconds, and only when it
    changed, so a batch job's log gets a line a minute rather than a line a second."""

    def __init__(self, stream=None, interval_s: float = 60.0, tty: bool | None = None,
                 log: logging.Logger | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.interval_s = float(interval_s)
        self.log = log or logging.getLogger(f"{LOGGER}.progress")
        self.text = ""
        self._drawn = False
        self._logged, self._last_log = "", 0.0
        self._lock = threading.RLock()

    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((100, 20)).columns - 1)

    def show(self, text: str) -> None:
        with self._lock:
            self.text = text
            if self.tty:
                self.redraw()
            elif text and text != self._logged and (
                    time.monotonic() - self._last_log >= self.interval_s):
                self._logged, self._last_log = text, time.monotonic()
                self.log.info(text)

    def redraw(self) -> None:
        with self._lock:
            if not self.tty or not self.text:
                return
            self.stream.write("\r\x1b[2K" + self.text[: self._width()])
            self.stream.flush()
            self._drawn = True

    def erase(self) -> None:
        with self._lock:
            if self.tty and self._drawn:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
                self._drawn = False

    def close(self) -> None:
        self.erase()
        self.text = ""


class Monitor:
    """Polls ``describe()`` every ``poll_s`` seconds in a daemon thread and shows its text on a
    :class:`StatusLine` (attached to the ``ubmd`` stderr handler, so log records print above
    it). Use as a context manager; ``describe`` must not raise (exceptions are ignored)."""

    def __init__(self, describe: Callable[[], str], poll_s: float = 1.0,
                 status: StatusLine | None = None):
        self.describe = describe
        self.poll_s = float(poll_s)
        handler = status_handler()
        self.status = status or StatusLine(handler.stream if handler else None)
        self._handler = handler
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ubmd-progress", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.update()

    def update(self) -> None:
        try:
            text = self.describe()
        except Exception:  # noqa: BLE001 - a progress display never stops a run
            logger.debug("progress: describe() failed", exc_info=True)
            return
        self.status.show(text)

    def __enter__(self):
        if self._handler is not None and self._handler.status is None:
            self._handler.status = self.status
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        if self._handler is not None and self._handler.status is self.status:
            self._handler.status = None
        self.status.close()
