"""The supervisor of ``serve --workers``, with stand-in workers: what it does when one fails."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from genledger.api.server import listen
from genledger.api.workers import Supervisor
from genledger.config import Settings
from tests.api import stand_in_workers


def _settings(folder: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{folder / 'ledger.db'}", port=0)


def _listen():
    return listen("127.0.0.1", 0)


def _wait_for(condition, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_worker_that_fails_before_it_serves_stops_everything(tmp_path: Path):
    started = time.monotonic()
    assert Supervisor(_settings(tmp_path), 2, target=stand_in_workers.fails_at_once).run(_listen()) == 1
    assert time.monotonic() - started < 30  # not after the minute a slow start is allowed


def test_a_worker_killed_before_it_serves_is_replaced_and_sigterm_ends_all_with_status_0(tmp_path: Path):
    outcome: list[BaseException] = []

    def drive() -> None:
        try:
            first = tmp_path / "first"
            _wait_for(lambda: first.exists() and first.read_text())
            os.kill(int(first.read_text()), signal.SIGKILL)
            # Its replacement and the other worker both serve.
            _wait_for(lambda: len(list(tmp_path.glob("serving-*"))) == 2)
        except BaseException as exc:
            outcome.append(exc)
        os.kill(os.getpid(), signal.SIGTERM)

    driver = threading.Thread(target=drive)
    driver.start()
    status = Supervisor(_settings(tmp_path), 2, target=stand_in_workers.serves_unless_first).run(_listen())
    driver.join()
    assert outcome == []
    assert status == 0
