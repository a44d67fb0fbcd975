"""Group commit: many requests' rows written in one transaction, each caller told when durable.

A request hands its row to :meth:`BatchWriter.write` and waits; one task drains whatever
has queued while the previous transaction committed, so under load a commit carries many
rows. Before it commits, the task lets the event loop run on while rows keep arriving (at
most :data:`LINGER_TURNS` turns of the loop): the requests whose answers are in the same
read from the network join the same commit. Alone, a row waits one turn of the loop (a few
microseconds, with nothing else to run). This is PostgreSQL's ``commit_delay`` with the
event loop for a clock, and it pays: a commit costs much more than a row (the transaction,
its pages written to the WAL, the key's charge, once per batch), and at 32 connections the
batches went from about 8 rows to about 20, the gateway's CPU per request down about 10%.

Where the transaction runs is a :class:`Sink` (``sinks.py``: one per database).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from genledger.errors import LedgerUnavailable

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
MAX_BATCH = 512
LINGER_TURNS = 8
RETRY_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # about 3 s in all, then 503

log = logging.getLogger("genledger.ledger")


class WriterClosed(RuntimeError):
    """The ledger is shutting down and takes no more writes."""


class Sink(Protocol[T_contra]):
    async def commit(self, batch: Sequence[T_contra]) -> None:
        """Write the whole batch in one transaction, or raise and write none of it."""
        ...

    async def close(self) -> None: ...


class BatchWriter(Generic[T]):
    """``retry``: when a commit fails because the database could not be reached (``transient``
    says so), the whole batch is tried again after each of these waits (seconds); its callers
    keep waiting, since nothing is answered before it is recorded. Still failing, each caller
    gets :class:`~genledger.errors.LedgerUnavailable`."""

    def __init__(
        self,
        sink: Sink[T],
        *,
        transient: Callable[[BaseException], bool] = lambda exc: False,
        retry: Sequence[float] = RETRY_WAITS_S,
    ) -> None:
        self._sink = sink
        self._transient = transient
        self._retry = tuple(retry)
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="genledger-ledger-writer")
        # The loop every write comes from (its wake-up event is bound to it), kept: asking
        # for the running loop costs a getpid() system call on Python 3.11, each request.
        self._loop = self._task.get_loop()

    async def write(self, item: T) -> None:
        """Return once ``item`` is committed; raise what the database raised for it."""
        if self._closed:
            raise WriterClosed("the ledger is closed")
        future: asyncio.Future[None] = (self._loop or asyncio.get_running_loop()).create_future()
        future.add_done_callback(_retrieve)
        self._pending.append((item, future))
        self._wakeup.set()
        # A caller that goes away cancels only its wait: the row stays queued and is written.
        await future

    async def _run(self) -> None:
        while not (self._closed and not self._pending):
            if not self._pending:
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            await self._linger()
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            await self._commit(batch)

    async def _linger(self) -> None:
        """Let the loop run while rows keep arriving, for the batch to take them too."""
        for _ in range(LINGER_TURNS):
            queued = len(self._pending)
            if queued >= MAX_BATCH:
                return
            await asyncio.sleep(0)
            if len(self._pending) == queued:
                return

    async def _commit(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        items = [item for item, _ in batch]
        try:
            for wait in self._retry:
                try:
                    await self._sink.commit(items)
                except Exception as exc:
                    if not self._transient(exc):
                        raise
                    log.warning("the ledger could not be reached (%s); retrying in %gs", _named(exc), wait)
                    await asyncio.sleep(wait)
                else:
                    _settle(batch, None)
                    return
            await self._sink.commit(items)
        except Exception as exc:
            if self._transient(exc):
                log.error("ledger write of %d record(s) failed: the database stayed unreachable", len(batch))
                unavailable = LedgerUnavailable()
                unavailable.__cause__ = exc
                _settle(batch, unavailable)
                return
            if len(batch) > 1:
                # One bad row must not fail the others: write them one by one.
                for one in batch:
                    await self._commit([one])
                return
            log.exception("ledger write failed")
            _settle(batch, exc)
        else:
            _settle(batch, None)

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await self._sink.close()


def _settle(batch: list[tuple[T, asyncio.Future[None]]], exc: BaseException | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)


def _retrieve(future: asyncio.Future[None]) -> None:
    # The caller may have gone away; its failure is logged by the writer, not lost to asyncio.
    if not future.cancelled():
        future.exception()


def _named(exc: BaseException) -> str:
    # Never the exception's text: a database error may quote the statement's parameters.
    return type(exc).__name__
