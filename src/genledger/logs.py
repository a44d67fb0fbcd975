"""Where genledger's log lines go (stderr) and how they look: JSON lines, or text in a terminal.

Two kinds of lines share stderr: one per request (``api/request_log.py`` writes them, at
``info``) and the messages of the ``logging`` module (warnings, errors), which
:func:`configure` formats the same way, so that a collector reads every line as JSON.
No line holds a key's secret, a prompt or an answer: the request lines are built from named
fields only, and the messages never quote a request.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import IO, Literal

import orjson

from genledger.config import LoggingConfig

LineFormat = Literal["json", "text"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}


def line_format(config: LoggingConfig, stream: IO[str] | None = None) -> LineFormat:
    """``config.format``, with ``auto`` resolved: text when ``stream`` (stderr) is a terminal."""
    if config.format != "auto":
        return config.format
    stream = stream if stream is not None else sys.stderr
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def request_lines_on(config: LoggingConfig) -> bool:
    """Whether a line is written per request (they are written at ``info``)."""
    return _LEVELS[config.level] <= logging.INFO


def level_of(name: str) -> int:
    """The ``logging`` level of a configured level name (``off``: above every level)."""
    return _LEVELS[name]


def timestamp(seconds: float) -> str:
    """``seconds`` since the epoch in UTC, to the millisecond: ``2026-11-27T09:50:01.234Z``."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class Timestamps:
    """:func:`timestamp`, for a line per request: the text up to the second is made once a second.

    (``datetime.fromtimestamp(...).isoformat()`` took about 10 µs a line on the shared CI box,
    half of what a request line costs; this takes well under 1 µs.)
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, seconds: float) -> str:
        second = int(seconds)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((seconds - second) * 1000):03d}Z"


def stderr_writer(line: bytes) -> None:
    """Write ``line`` to file descriptor 2 in one call (lines under 4 KiB are never interleaved).

    A line that cannot be written (stderr closed, a full non-blocking pipe) is dropped: the
    log never fails a request.
    """
    try:  # noqa: SIM105 - free when nothing is raised; suppress() enters a context per line
        os.write(2, line)
    except OSError:
        pass


class JsonFormatter(logging.Formatter):
    """A ``logging`` record as one JSON line: time, level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """A ``logging`` record as a line of text, its time as the request lines have it
    (:func:`timestamp`: ``2026-11-27T09:50:01.234Z``), not logging's local ``,764`` form."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return timestamp(record.created)


def configure(config: LoggingConfig, stream: IO[str] | None = None) -> LineFormat:
    """Send the ``logging`` module's records to ``stream`` (stderr) at the configured level.

    Replaces the root logger's handlers (uvicorn's own loggers propagate to it); returns the
    format chosen, for the request lines to match.
    """
    stream = stream if stream is not None else sys.stderr
    chosen = line_format(config, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_of(config.level))
    return chosen
