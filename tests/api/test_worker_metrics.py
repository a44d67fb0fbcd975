"""The folder of the workers' metric snapshots: written atomically, added up, workers retired
without their counts going away, and scrapes that never see a counter go down."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson

from genledger.api.worker_metrics import SnapshotFolder, WorkerMetrics
from genledger.metrics import Metrics, Snapshot

ERRORS = ("genledger_errors", ("status",))


def errors(snapshot: Snapshot) -> float:
    return sum(snapshot.counters.get(ERRORS, {}).values())


def worker(folder: SnapshotFolder, serial: int, open_endpoints: list[str] | None = None) -> Metrics:
    """A worker's metrics, with ``serial`` errors counted and written to its file."""
    metrics = Metrics()
    metrics.watch_circuits(lambda: open_endpoints or [])
    for _ in range(serial):
        metrics.error(500)
    folder.worker_file(serial).write_bytes(orjson.dumps(metrics.snapshot().to_json()))
    return metrics


def scraped_errors(exposition: bytes) -> float:
    line = next(
        line for line in exposition.decode().splitlines() if line.startswith("genledger_errors_total")
    )
    return float(line.rsplit(" ", 1)[1])


def test_a_retired_worker_keeps_its_counts_loses_its_gauges_and_is_counted_once(tmp_path: Path):
    folder = SnapshotFolder(tmp_path)
    worker(folder, 1, ["up/a"])
    worker(folder, 2, ["up/b"])
    worker(folder, 4)
    assert errors(folder.read()) == 7 and folder.read().open_endpoints == {"up/a", "up/b"}

    stale = folder.worker_file(2).read_bytes()
    folder.worker_file(2).with_name("worker-2.json.tmp").write_bytes(b"{half a wri")  # killed mid-write
    folder.retire(folder.worker_file(2))
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "retired.json",
        "worker-1.json",
        "worker-4.json",
    ]
    assert errors(folder.read()) == 7 and folder.read().open_endpoints == {"up/a"}

    # A scrape that listed the folder before the retirement reads the worker's file as it was,
    # and retired.json after: it counts the worker once.
    folder.worker_file(2).write_bytes(stale)
    assert errors(folder.read()) == 7
    folder.worker_file(2).unlink()

    folder.retire(folder.worker_file(1))
    folder.retire(folder.worker_file(1))  # twice, or a worker that never wrote: nothing more
    folder.retire(folder.worker_file(9))
    assert errors(folder.read()) == 7 and folder.read().open_endpoints == set()
    assert orjson.loads((tmp_path / "retired.json").read_bytes())["folded"] == [
        "worker-1.json",
        "worker-2.json",
    ]


def test_a_snapshot_no_worker_could_have_written_is_skipped_with_a_warning(tmp_path: Path, caplog):
    folder = SnapshotFolder(tmp_path)
    worker(folder, 3)
    folder.worker_file(5).write_bytes(b'{"counters": 1}')
    with caplog.at_level(logging.WARNING, logger="genledger"):
        assert errors(folder.read()) == 3
    assert "worker-5.json" in caplog.text


async def test_scrapes_answered_by_different_workers_never_see_a_counter_go_down(tmp_path: Path):
    first_metrics, second_metrics = Metrics(), Metrics()
    first = WorkerMetrics(first_metrics, tmp_path / "worker-1.json", interval=3600)
    second = WorkerMetrics(second_metrics, tmp_path / "worker-2.json", interval=3600)
    first_metrics.error(500)
    second_metrics.error(500)
    await first.publish()
    await second.publish()
    first_metrics.error(500)  # since its last snapshot
    # The answering worker's own values are fresh: it writes them before it adds up the folder.
    assert scraped_errors(await first.exposition()) == 3
    # ... so the next scrape, answered by the other worker, sees them too: a scrape that took the
    # first worker's live values but the second's snapshot would have been followed by a 2 here.
    assert scraped_errors(await second.exposition()) == 3


async def test_a_worker_writes_at_start_every_interval_what_changed_and_once_more_at_its_close(
    tmp_path: Path,
):
    metrics = Metrics()
    file = tmp_path / "worker-1.json"
    first = WorkerMetrics(metrics, file, interval=3600)
    first.start()
    await _until(file.exists)  # at once, not an interval later: before the worker serves
    await first.aclose()
    file.unlink()
    publisher = WorkerMetrics(metrics, file, interval=0.02)
    publisher.start()
    metrics.error(500)
    await _until(lambda: file.exists() and errors(Snapshot.from_json(orjson.loads(file.read_bytes()))) == 1)
    written = file.stat().st_ino
    await asyncio.sleep(0.1)
    assert file.stat().st_ino == written  # nothing changed: not written again (os.replace: a new inode)
    metrics.error(500)  # as a shutdown's last records are: then at once its last snapshot
    await publisher.aclose()
    assert errors(SnapshotFolder(tmp_path).read()) == 2


async def test_a_worker_whose_folder_is_gone_warns_and_serves_on(tmp_path: Path, caplog):
    folder = tmp_path / "gone"
    folder.mkdir()
    metrics = Metrics()
    publisher = WorkerMetrics(metrics, folder / "worker-1.json", interval=3600)
    shutil.rmtree(folder)
    metrics.error(500)
    with caplog.at_level(logging.WARNING, logger="genledger"):
        await publisher.publish()
        exposition = await publisher.exposition()
    assert "cannot write this worker's metrics" in caplog.text
    assert b"genledger_errors_total{" not in exposition  # (the parent is gone: nothing to add up)


async def _until(condition: Callable[[], bool], within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
