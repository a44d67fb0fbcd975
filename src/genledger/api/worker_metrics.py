"""The metrics of ``serve --workers N``: whichever worker a scrape reaches answers for them all.

Each worker counts in its own memory (``metrics.py``), and the kernel hands a scrape to any
one of them. So the parent makes a private directory (:meth:`SnapshotFolder.create`, removed
at exit) and names a file in it for each worker it starts; the worker writes a snapshot of
its values there every :data:`SNAPSHOT_INTERVAL_S` seconds, and once more when it has shut
down (:class:`WorkerMetrics`). Each write is atomic (a temporary file, then ``os.replace``).

A scrape writes the answering worker's snapshot first, then exposes the sum of every file:
the other workers' values are up to :data:`SNAPSHOT_INTERVAL_S` old. It exposes the files
only, never the answering worker's live values beside the others' files: the next scrape,
answered by another worker, would read that worker's older file and see counters go down.
A file is only ever replaced by a larger one, so scrapes never do.

A worker that exits (a rolling restart, a crash, ``kill -9``) is retired by the parent: its
last snapshot is added to ``retired.json`` and its file removed, so its counts stay in the
sums (less, for a killed one, what it counted since its last snapshot) and its gauges leave
them. ``retired.json`` names the files it has taken in; a scrape reads it last and skips
those, so a scrape that raced a retirement counts the worker once, never twice or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import orjson

from genledger.metrics import Metrics, Snapshot

log = logging.getLogger("genledger")

SNAPSHOT_INTERVAL_S = 1.0
"""How often a worker writes its snapshot: how far behind the other workers a scrape may be."""

_RETIRED = "retired.json"
_WORKER_GLOB = "worker-*.json"


class SnapshotFolder:
    """The directory of one ``serve``'s snapshots: ``worker-<n>.json`` for each worker started,
    ``retired.json`` for those gone. Named by a serial number, not a pid: the kernel reuses pids.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls) -> SnapshotFolder:
        """A new private directory (mode 0700) in the temporary directory."""
        return cls(Path(tempfile.mkdtemp(prefix="genledger-metrics-")))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def worker_file(self, serial: int) -> Path:
        return self.path / f"worker-{serial}.json"

    def read(self) -> Snapshot:
        """The sum of every worker's snapshot and of the retired ones."""
        # The workers' files first, retired.json last: a worker retired meanwhile is in the
        # retired.json read (it is written before the worker's file is removed), and named there.
        workers = {}
        for file in self.path.glob(_WORKER_GLOB):
            snapshot = _read(file)
            if snapshot is not None:
                workers[file.name] = snapshot
        folded, retired = self._retired()
        return Snapshot.total([retired, *(s for name, s in workers.items() if name not in folded)])

    def retire(self, file: Path) -> None:
        """Add the snapshot of a worker that has exited to ``retired.json``, without its gauges;
        then remove its file. Only the parent calls it, once the worker is gone."""
        folded, retired = self._retired()
        snapshot = _read(file)
        if file.name not in folded and snapshot is not None:
            envelope = {
                "folded": sorted({*folded, file.name}),
                **retired.plus(snapshot.without_gauges()).to_json(),
            }
            _write(self.path / _RETIRED, orjson.dumps(envelope))
        file.unlink(missing_ok=True)
        _temporary(file).unlink(missing_ok=True)  # what a killed worker was writing

    def _retired(self) -> tuple[frozenset[str], Snapshot]:
        try:
            data = orjson.loads((self.path / _RETIRED).read_bytes())
        except FileNotFoundError:
            return frozenset(), Snapshot()
        return frozenset(data["folded"]), Snapshot.from_json(data)


class WorkerMetrics:
    """A worker's side: its snapshot written to ``file`` at :meth:`start`, then every ``interval``
    seconds, at a scrape and at :meth:`aclose`; scrapes answered with the sum of the folder.

    The snapshot is copied on the event loop, where every count is made; encoding and writing
    it happen in a thread. Nothing of this runs per request.
    """

    def __init__(self, metrics: Metrics, file: Path, *, interval: float = SNAPSHOT_INTERVAL_S) -> None:
        self._metrics = metrics
        self._file = file
        self._folder = SnapshotFolder(file.parent)
        self._interval = interval
        self._written: bytes | None = None
        # Writes in the order their snapshots were taken: a file never goes back to older values.
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._every_interval())

    async def aclose(self) -> None:
        """Stop writing every interval, and write the last snapshot (once nothing counts any more)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.publish()

    async def publish(self) -> None:
        """Write the snapshot now (unless nothing changed since the last one)."""
        async with self._writing:
            snapshot = self._metrics.snapshot()
            try:
                self._written = await asyncio.to_thread(self._write, snapshot)
            except OSError as exc:
                # The parent removed the folder (it exited), or the disk is full: the next
                # write tries again; the scrapes of the other workers see older values meanwhile.
                log.warning("cannot write this worker's metrics to %s: %s", self._file, exc)

    def _write(self, snapshot: Snapshot) -> bytes:
        data = orjson.dumps(snapshot.to_json())
        if data != self._written:
            _write(self._file, data)
        return data

    async def exposition(self) -> bytes:
        """The text exposition of the sum of every worker of this ``serve``, this one's values fresh."""
        await self.publish()
        return self._metrics.exposition(await asyncio.to_thread(self._folder.read))

    async def _every_interval(self) -> None:
        while True:  # at once first: the folder has the worker's file before it serves
            await self.publish()
            await asyncio.sleep(self._interval)


def _read(file: Path) -> Snapshot | None:
    """The snapshot in ``file``; None when it is gone (retired meanwhile) or unreadable."""
    try:
        return Snapshot.from_json(orjson.loads(file.read_bytes()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:  # not written by a worker of this version
        log.warning("ignoring the metrics snapshot %s: %r", file, exc)
        return None


def _write(file: Path, data: bytes) -> None:
    temporary = _temporary(file)
    temporary.write_bytes(data)
    os.replace(temporary, file)


def _temporary(file: Path) -> Path:
    return file.with_name(file.name + ".tmp")
