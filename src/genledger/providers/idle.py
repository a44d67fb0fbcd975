"""A deadline on the reads of a stream: how ``stream_idle_timeout`` is enforced.

Only the time a read spends waiting for data counts. Time between reads belongs to the
consumer (a slow caller is not a stalled provider), and nothing here wraps a ``yield``:
when a read has waited too long, :meth:`~genledger.providers.h1.Response.set_exception` makes that
read raise :class:`~genledger.providers.transport.Stalled`, so no task is cancelled and
only the reader notices.

One timer per stream, re-armed lazily: a read costs a clock reading and two attribute
writes, and the timer wakes about once per ``limit`` whatever the chunk rate. Measured
(timeit, CPython 3.11, aiohttp 3.14): ``start`` + ``stop`` take about 0.2 µs a read, an
``asyncio.timeout`` around each read about 7 µs, and aiohttp's ``sock_read`` timer, which
streams no longer use, about 2 µs per packet received.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

from genledger.providers.transport import Stalled


class Failable(Protocol):
    """What a deadline fails: a body being read (:class:`~genledger.providers.h1.Response`)."""

    def set_exception(self, exc: BaseException) -> None: ...


class ReadDeadline:
    """Fails a read of ``content`` that waits longer than ``limit`` seconds, or past ``lasting``.

    Call :meth:`start` right before each read and :meth:`stop` right after it;
    :meth:`expect` changes the limit (and what the failure says) for the reads to come;
    :meth:`cancel` when done. Made on the running loop.

    ``lasting``: seconds from now the whole stream may take, however often its chunks come
    (a peer sending a chunk just within ``limit``, forever): a read waiting at that moment
    fails, and so does any read started after it.
    """

    __slots__ = ("_content", "_ends_at", "_lasting", "_limit", "_loop", "_since", "_timer", "_waited_for")

    def __init__(
        self, content: Failable, limit: float, waited_for: str, *, lasting: float | None = None
    ) -> None:
        self._content = content
        self._limit = limit
        self._waited_for = waited_for
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lasting = lasting
        self._ends_at = self._loop.time() + lasting if lasting is not None else math.inf

    def expect(self, limit: float, waited_for: str) -> None:
        """From the next read on, wait at most ``limit`` seconds for ``waited_for``."""
        self._limit = limit
        self._waited_for = waited_for
        self.cancel()  # a timer armed for a longer limit would fire too late

    def start(self) -> None:
        self._since = now = self._loop.time()
        if now >= self._ends_at:
            raise self._over()
        if self._timer is None:
            self._timer = self._loop.call_at(min(now + self._limit, self._ends_at), self._check)

    def stop(self) -> None:
        self._since = None

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        since = self._since
        if since is None:
            return  # between reads: the next read arms the timer again
        deadline = min(since + self._limit, self._ends_at)
        now = self._loop.time()
        if now >= self._ends_at:
            self._content.set_exception(self._over())
        elif now >= deadline:
            self._content.set_exception(Stalled(f"no {self._waited_for} for {self._limit:g}s"))
        else:
            self._timer = self._loop.call_at(deadline, self._check)

    def _over(self) -> Stalled:
        return Stalled(f"the stream lasted longer than {self._lasting:g}s")
