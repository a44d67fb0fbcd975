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

from genledger.config import Settings


def _folder(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///")).parent


def fails_at_once(settings: Settings, listeners: list[socket.socket], ready: Connection) -> None:
    """A worker that cannot start (a database it cannot open, say)."""
    sys.exit(3)


def serves_unless_first(settings: Settings, listeners: list[socket.socket], ready: Connection) -> None:
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
