"""The end of a graceful shutdown: requests still waiting on an upstream are stopped.

After SIGTERM the server stops accepting and in-flight requests get ``shutdown_timeout``
seconds to finish. Then :meth:`Stopping.stop` interrupts each request that is still waiting
on its provider: a stream ends with an error chunk and is recorded as cancelled, charged
like one its caller left (``core/estimates.py``); a request not answered yet gets 503. Their
reservations are settled or released on the way out, as for any other end.

Only a wait on the provider is interrupted, never a write to the caller: a request marks the
awaits it may be interrupted in (:meth:`Watch.waiting`), and one that is writing when the
stop comes sees :attr:`Watch.stopped` as soon as its write returns. The interruption is a
cancellation of the request's task, taken back (``uncancel``) by the code that asked for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The gateway is shutting down and stopped this request's wait on its provider."""


class Watch:
    """One request's registration with :class:`Stopping`."""

    __slots__ = ("_task", "stopped")

    def __init__(self) -> None:
        self._task: asyncio.Task[object] | None = None  # the task inside waiting(), if any
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self._task is not None:
            # The task is suspended inside waiting() (this runs in another callback), so the
            # cancellation is thrown in exactly there.
            self._task.cancel("the gateway is shutting down")

    def arm(self, task: asyncio.Task[object]) -> None:
        """``task`` is about to wait on the provider: a stop from now on interrupts it.

        For a loop's hot path, where a call of :meth:`waiting` per wait costs too much (a
        stream's every chunk): pair with :meth:`disarm` in a ``finally``, and on
        ``CancelledError`` ask :meth:`taken_back` whether it was the stop's.
        """
        self._task = task

    def disarm(self) -> None:
        self._task = None

    def taken_back(self, task: asyncio.Task[object]) -> bool:
        """Whether the cancellation ``task`` got was this watch's stop (then it is taken back)."""
        if not self.stopped:
            return False
        task.uncancel()
        return True

    async def waiting(self, awaitable: Awaitable[T], task: asyncio.Task[Any] | None = None) -> T:
        """Await ``awaitable``; raise :class:`Stopped` if the gateway stops meanwhile (or had).

        ``task``: the task that waits (this one), when the caller has it at hand.
        """
        if self.stopped:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()  # never awaited: say so to the coroutine, not to the garbage collector
            raise Stopped
        # The task that waits now: a stream's relay may be iterated by more than one task.
        task = self._task = task or asyncio.current_task()
        assert task is not None
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self.stopped:
                raise
            task.uncancel()
            raise Stopped from None
        finally:
            self._task = None


class Stopping:
    """Every request that may be waiting on a provider, so that a shutdown can stop them."""

    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self.stopped = False

    def watch(self) -> _Registration:
        """Register a request for as long as the ``with`` block this opens runs."""
        return _Registration(self._watches, self.stopped)

    def stop(self) -> int:
        """Stop every registered request's wait, and any that registers from now on; how many."""
        self.stopped = True
        watches = list(self._watches)
        for watch in watches:
            watch.stop()
        return len(watches)


class _Registration:
    """A :class:`Watch` registered in ``watches`` while the ``with`` block runs (a class, not
    a generator: it is entered by every request)."""

    __slots__ = ("_watch", "_watches")

    def __init__(self, watches: set[Watch], stopped: bool) -> None:
        self._watches = watches
        self._watch = Watch()
        self._watch.stopped = stopped

    def __enter__(self) -> Watch:
        self._watches.add(self._watch)
        return self._watch

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._watches.discard(self._watch)
