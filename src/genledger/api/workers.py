"""Serving on several processes: one listening socket, N workers, each a whole gateway.

The parent gets the socket bound (``server.listen``) and starts the workers (``multiprocessing``'s
spawn: a worker shares nothing with the parent but that socket and the settings); each serves it with
``server.py``'s graceful server, and the kernel hands each new connection to one of them.
What must agree across workers lives outside them: credits in the ledger, rate limits in
Redis, the dashboard's cookie secret in the settings (generated here when not configured).

The parent, until told to stop:

- SIGTERM or SIGINT: closes its copy of the socket (the port refuses new connections once the
  workers have closed theirs), passes the signal on to every worker, each of which shuts down
  gracefully, and exits 0 once they all have (1 if one did not exit cleanly).
- SIGHUP: a rolling restart. Each worker in turn is replaced: its successor starts, and only
  once it serves does the old one get SIGTERM and drain. The port never stops answering, and
  a draining worker answers what reaches it on kept-alive connections (``connections.py``).
- A worker that dies (``kill -9``, a crash) is replaced. A worker that fails by itself before
  it ever served (a database that cannot be opened, say), or takes longer than a minute to
  start, stops everything: exit 1. One killed by a signal before it served is replaced.

Metrics: each worker writes its snapshot to a file of the parent's private directory, and a
scrape of any worker adds them all up; the parent retires the file of each worker that
exits, and removes the directory at its own exit (``worker_metrics.py``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

from pydantic import SecretStr

from genledger.api.worker_metrics import SnapshotFolder
from genledger.config import Settings
from genledger.gateway.cookie_secret import SECRET_BYTES, secret_file

log = logging.getLogger("genledger")

READY_WITHIN_S = 60.0  # a worker imports, opens the ledger and starts its services in this time
POLL_S = 0.2
PARENT_CHECK_S = 1.0


class WorkersError(ValueError):
    """Several workers cannot serve these settings; the message says why."""


def worker_count(settings: Settings, asked: int | None, cores: int) -> int:
    """How many workers to run: ``asked``, or one per core on PostgreSQL with Redis, else one.

    Raises :class:`WorkersError` for more than one on settings that would make each worker
    keep its own truth: rate limits in each process's memory. (An in-memory SQLite ledger is
    refused by the settings themselves.)
    """
    shared_limits = settings.limits.backend == "redis"
    postgres = settings.database_url.startswith(("postgresql", "postgres"))
    if asked is None:
        return max(1, cores) if postgres and shared_limits else 1
    if asked < 1:
        raise WorkersError("--workers must be at least 1")
    if asked > 1 and not shared_limits:
        raise WorkersError(
            'several workers need shared rate limits: set [limits] backend = "redis" '
            "(with the memory backend each worker would allow the whole limit)"
        )
    return asked


def shared_settings(settings: Settings) -> Settings:
    """``settings`` with what every worker must agree on and would otherwise make up alone."""
    if settings.dashboard_secret is None and secret_file(settings.database_url) is None:
        # Without a configured secret and a SQLite file to keep one beside, each process would
        # generate its own, and a cookie signed by one worker would be refused by the next.
        generated = SecretStr(secrets.token_hex(SECRET_BYTES))
        return settings.model_copy(update={"dashboard_secret": generated})
    return settings


def _worker_main(
    settings: Settings, listeners: list[socket.socket], ready: Connection, metrics_file: Path
) -> None:
    """A worker process: the graceful server on the inherited sockets; says when it serves."""
    from genledger.api.server import serve

    parent = os.getppid()
    threading.Thread(target=_end_with, args=(parent,), name="genledger-parent-watch", daemon=True).start()
    serve(settings, sockets=listeners, on_started=lambda: ready.send(os.getpid()), metrics_file=metrics_file)


def _end_with(parent: int) -> None:
    """Shut this worker down gracefully once ``parent`` is gone (killed, say, with ``kill -9``):
    an orphan would go on serving the port with no one to stop or replace it."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


WorkerMain = Callable[[Settings, list[socket.socket], Connection, Path], None]
"""What a worker process runs: ``_worker_main``, or a test's stand-in (importable, for spawn)."""


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    ready: Connection
    metrics_file: Path
    served: bool = False
    retiring: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def check_ready(self, timeout: float = 0) -> bool:
        if not self.served and self.ready.poll(timeout):
            try:
                self.ready.recv()
            except EOFError:
                return False
            self.served = True
        return self.served

    def signal(self, sig: int) -> None:
        if self.process.exitcode is None:
            os.kill(self.pid, sig)


class Supervisor:
    """Runs ``count`` workers on one socket until SIGTERM or SIGINT; see the module's docstring."""

    def __init__(self, settings: Settings, count: int, *, target: WorkerMain | None = None) -> None:
        if count < 1:
            raise ValueError("workers must be at least 1")
        self._settings = shared_settings(settings)
        self._count = count
        self._target = target or _worker_main
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._started = 0
        self._metrics: SnapshotFolder | None = None
        self._signals: list[int] = []
        self._wake = threading.Event()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)
        self._wake.set()

    def _spawn(self, listeners: list[socket.socket]) -> _Worker:
        assert self._metrics is not None
        self._started += 1
        metrics_file = self._metrics.worker_file(self._started)
        receiving, sending = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=self._target,
            args=(self._settings, listeners, sending, metrics_file),
            name="genledger-worker",
        )
        process.start()
        sending.close()
        return _Worker(process, receiving, metrics_file)

    def _retire(self, worker: _Worker) -> None:
        """Keep the counts of ``worker``, which has exited, in the metrics of those that serve."""
        assert self._metrics is not None
        try:
            self._metrics.retire(worker.metrics_file)
        except (OSError, ValueError, KeyError, TypeError):
            log.exception("the metrics of worker %s could not be kept", worker.pid)

    def _wait_ready(self, worker: _Worker) -> bool:
        """Whether ``worker`` serves within the start-up time; False if it died or a signal came."""
        waited = 0.0
        while waited < READY_WITHIN_S:
            if worker.check_ready(POLL_S):
                return True
            if worker.process.exitcode is not None or self._signals:
                return False
            waited += POLL_S
        return False

    def run(self, listeners: list[socket.socket]) -> int:
        """Serve on ``listeners`` (``server.listen``'s, closed here) until stopped; the exit
        status for the parent process."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        self._metrics = SnapshotFolder.create()
        try:
            self._workers = [self._spawn(listeners) for _ in range(self._count)]
            return self._supervise(listeners)
        finally:
            for listener in listeners:
                listener.close()
            self._metrics.remove()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self, listeners: list[socket.socket]) -> int:
        announced = False
        while True:
            self._wake.wait(POLL_S)
            self._wake.clear()
            while self._signals:
                sig = self._signals.pop(0)
                if sig != signal.SIGHUP:
                    # SIGTERM to each, even for a SIGINT: a terminal's Ctrl-C reached the workers
                    # already, and a second SIGINT would make them exit without their grace.
                    return self._stop(listeners, status=0)
                self._restart(listeners)
            for index, worker in enumerate(self._workers):
                worker.check_ready()
                exitcode = worker.process.exitcode
                if exitcode is None:
                    if not worker.served and time.monotonic() - worker.started > READY_WITHIN_S:
                        log.error(
                            "worker %s did not start serving in %ss; stopping", worker.pid, READY_WITHIN_S
                        )
                        return self._stop(listeners, status=1)
                    continue
                if worker.retiring:
                    continue
                if not worker.served and exitcode > 0:
                    # It failed by itself before it served (a database it cannot open, say): its
                    # successor would fail the same way.
                    log.error("worker %s exited (%s) before it served; stopping", worker.pid, exitcode)
                    return self._stop(listeners, status=1)
                # Killed (kill -9, the OOM killer), or failed after serving: replaced.
                log.warning("worker %s exited (%s); starting another", worker.pid, exitcode)
                worker.ready.close()
                self._retire(worker)
                self._workers[index] = self._spawn(listeners)
            if not announced and all(worker.served for worker in self._workers):
                log.info("%d workers serving on %s:%s", self._count, self._settings.host, self._settings.port)
                announced = True

    def _restart(self, listeners: list[socket.socket]) -> None:
        """Replace each worker, in turn, once its successor serves."""
        log.info("restarting %d workers", len(self._workers))
        for index, old in enumerate(self._workers):
            successor = self._spawn(listeners)
            if not self._wait_ready(successor):
                successor.signal(signal.SIGKILL)
                successor.process.join()
                successor.ready.close()
                self._retire(successor)
                if not self._signals:  # else a stop came meanwhile, and the loop makes it
                    log.error("a new worker did not start serving; the old ones stay")
                return
            old.retiring = True
            old.signal(signal.SIGTERM)
            old.process.join()
            old.ready.close()
            self._retire(old)
            self._workers[index] = successor

    def _stop(self, listeners: list[socket.socket], *, status: int) -> int:
        # The port closes once the workers close their copies as they drain: new connections
        # are refused then, not queued in a socket the parent holds open until it exits, and
        # reset there after their callers sent a request.
        for listener in listeners:
            listener.close()
        for worker in self._workers:
            worker.retiring = True
            worker.signal(signal.SIGTERM)
        clean = True
        for worker in self._workers:
            worker.process.join()
            clean = clean and worker.process.exitcode == 0
            worker.ready.close()
        return status if clean or status else 1
