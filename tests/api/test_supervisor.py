"""The supervisor of ``serve --workers``, with stand-in workers: what it does when one fails."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from genledger.api.server import listen
from genledger.api.worker_metrics import SnapshotFolder
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


def test_the_counts_of_a_killed_worker_stay_in_the_metrics_and_the_folder_goes_at_exit(tmp_path: Path):
    outcome: list[BaseException] = []
    folders: set[Path] = set()

    def errors_counted() -> float:
        (folder,) = folders
        return sum(SnapshotFolder(folder).read().counters[("genledger_errors", ("status",))].values())

    def drive() -> None:
        try:
            _wait_for(lambda: len(list(tmp_path.glob("serving-*"))) == 2)
            serving = {
                int(path.name.split("-")[1]): Path(path.read_text()) for path in tmp_path.glob("serving-*")
            }
            folders.update(file.parent for file in serving.values())
            assert len(folders) == 1 and errors_counted() == 2
            victim = min(serving)
            os.kill(victim, signal.SIGKILL)
            # Retired by the parent: its file gone, its count kept, beside its replacement's.
            _wait_for(lambda: not serving[victim].exists() and len(list(tmp_path.glob("serving-*"))) == 3)
            assert errors_counted() == 3
        except BaseException as exc:
            outcome.append(exc)
        os.kill(os.getpid(), signal.SIGTERM)

    driver = threading.Thread(target=drive)
    driver.start()
    status = Supervisor(_settings(tmp_path), 2, target=stand_in_workers.counts_and_serves).run(_listen())
    driver.join()
    assert outcome == []
    assert status == 0
    (folder,) = folders
    assert not folder.exists()
