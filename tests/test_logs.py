"""logs.py: the format chosen (auto: text on a terminal), the cached timestamps, the JSON formatter
that puts the logging module's records on the same stderr as the request lines."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import orjson
import pytest

from genledger.config import LoggingConfig
from genledger.logs import JsonFormatter, Timestamps, configure, line_format, request_lines_on, timestamp


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_text_on_a_terminal_and_json_elsewhere():
    assert line_format(LoggingConfig(), Terminal()) == "text"
    assert line_format(LoggingConfig(), io.StringIO()) == "json"
    assert line_format(LoggingConfig(format="json"), Terminal()) == "json"
    assert line_format(LoggingConfig(format="text"), io.StringIO()) == "text"


@pytest.mark.parametrize(
    ("level", "on"), [("debug", True), ("info", True), ("warning", False), ("off", False)]
)
def test_request_lines_are_info(level, on):
    assert request_lines_on(LoggingConfig(level=level)) is on


@pytest.mark.parametrize("seconds", [0.5, 1795773356.0, 1795773356.25, 1795773357.0456, 1795773417.5])
def test_cached_timestamps_read_as_the_plain_ones(seconds):
    timestamps = Timestamps()
    timestamps(seconds - 61)  # a stale second in the cache
    assert timestamps(seconds) == timestamp(seconds)
    assert timestamp(1795773356.25) == "2026-11-27T09:55:56.250Z"


@contextmanager
def configured(config: LoggingConfig, chosen: str) -> Iterator[io.StringIO]:
    """The logging module configured onto a fresh stream, the root logger restored after."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        assert configure(config, stream) == chosen
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_the_logging_module_writes_json_lines_at_the_configured_level():
    with configured(LoggingConfig(level="warning", format="json"), "json") as stream:
        logging.getLogger("genledger.test").info("not shown")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("genledger.test").exception("failed %s", "here")
    [line] = stream.getvalue().splitlines()
    record = orjson.loads(line)
    assert (record["level"], record["logger"]) == ("error", "genledger.test")
    assert record["message"] == "failed here"
    assert "ValueError: boom" in record["exception"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


def test_text_lines_of_the_logging_module_carry_the_request_lines_time():
    """uvicorn's and genledger's messages beside the request lines: one time form for all."""
    with configured(LoggingConfig(level="info", format="text"), "text") as stream:
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    [line] = stream.getvalue().splitlines()
    stamp, rest = line.split(" ", 1)
    assert timestamp(datetime.fromisoformat(stamp).timestamp()) == stamp and stamp.endswith("Z")
    assert rest == "INFO uvicorn.error: Started server process [42]"


def test_a_line_that_cannot_be_written_is_dropped_not_raised(monkeypatch):
    from genledger import logs

    def closed(fd: int, data: bytes) -> int:
        raise BrokenPipeError

    monkeypatch.setattr(logs.os, "write", closed)
    logs.stderr_writer(b"{}\n")
