"""Stand-ins for a worker process, for the supervisor's tests (importable: spawn imports them).

Each takes what ``_worker_main`` takes, and uses ``settings.database_url``'s folder to talk to
the test: files it writes there say what it did.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import orjson

from genledger.config import Settings


def _folder(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///")).parent


def fails_at_once(
    settings: Settings, listeners: list[socket.socket], ready: Connection, metrics_file: Path
) -> None:
    """A worker that cannot start (a database it cannot open, say)."""
    sys.exit(3)


def serves_unless_first(
    settings: Settings, listeners: list[socket.socket], ready: Connection, metrics_file: Path
) -> None:
    """The first one hangs before serving and says its pid; every later one serves until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    first = _folder(settings) / "first"
    try:
        with first.open("x") as marker:
            marker.write(str(os.getpid()))
    except FileExistsError:
        ready.send(os.getpid())
        (_folder(settings) / f"serving-{os.getpid()}").touch()
    while True:
        time.sleep(0.1)


def counts_and_serves(
    settings: Settings, listeners: list[socket.socket], ready: Connection, metrics_file: Path
) -> None:
    """Writes a snapshot of one error counted to ``metrics_file``, then says it serves (in
    ``serving-<pid>``, which names that file) and serves until SIGTERM."""
    from genledger.metrics import Metrics  # as a worker imports it, not the supervisor's tests

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    metrics = Metrics()
    metrics.error(500)
    metrics_file.write_bytes(orjson.dumps(metrics.snapshot().to_json()))
    (_folder(settings) / f"serving-{os.getpid()}").write_text(str(metrics_file))
    ready.send(os.getpid())
    while True:
        time.sleep(0.1)
