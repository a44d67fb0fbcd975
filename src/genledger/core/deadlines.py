"""Deadlines of many requests on one timer, instead of a timer each.

``asyncio.timeout`` arms a timer on the loop when a request enters it and cancels it when
the request leaves: 4-5 us a request on uvloop, measured, about 2.5% of the CPU a whole
request costs the gateway (and aiohttp's ``sock_read``, re-armed at every packet, cost
more). The deadlines a request runs under, the total one (``routing.total_timeout``) and a
provider's ``timeout`` for its answer, are seconds to minutes long and need no such
precision. :class:`Deadlines` keeps the deadlines of the requests inside
:meth:`Deadlines.within` in a set; while the set holds any, one timer every ``tick`` seconds
cancels the tasks whose time is up. So a deadline strikes up to a tick late, and otherwise
as ``asyncio.timeout``'s does: the cancellation becomes ``TimeoutError`` where the block
ends, and a cancellation that came from elsewhere meanwhile is not swallowed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

TICK_S = 0.05


class Deadlines:
    def __init__(self, tick: float = TICK_S) -> None:
        self._tick = tick
        self._running: set[Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def within(
        self,
        seconds: float,
        error: Callable[[], Exception] | None = None,
        *,
        task: asyncio.Task[Any] | None = None,
    ) -> Deadline:
        """A ``with`` (in a task) whose body is cancelled after ``seconds``: it then ends with
        ``TimeoutError``, or with what ``error`` makes (the caller's own failure).

        ``task`` is the task that enters it, when the caller has it at hand: else it is asked
        for (``asyncio.current_task()``, a getpid() system call on Python 3.11).
        """
        return Deadline(self, seconds, error, task)

    def _enter(self, deadline: Deadline) -> None:
        self._running.add(deadline)
        if self._timer is None or self._timer_loop is None or self._timer_loop.is_closed():
            # (A loop that is gone took its timer along: tests run one loop after another.)
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._tick, self._sweep)
            self._timer_loop = loop

    def _exit(self, deadline: Deadline) -> None:
        self._running.discard(deadline)

    def _sweep(self) -> None:
        now = time.monotonic()
        for deadline in self._running:
            if deadline.when <= now:
                deadline.expire()
        if self._running:
            assert self._timer_loop is not None
            self._timer = self._timer_loop.call_later(self._tick, self._sweep)
        else:
            self._timer = None


class Deadline:
    """One request's place in :class:`Deadlines` (as ``asyncio.Timeout``, entered once).

    A plain ``with``, where ``asyncio.timeout`` is an ``async with``: entering and leaving
    await nothing, and the two coroutines an ``async with`` makes would add 0.24 us to the
    0.8 us this costs a request (timeit).
    """

    __slots__ = ("_cancelling", "_deadlines", "_error", "_seconds", "_task", "expired", "when")

    def __init__(
        self,
        deadlines: Deadlines,
        seconds: float,
        error: Callable[[], Exception] | None = None,
        task: asyncio.Task[Any] | None = None,
    ) -> None:
        self._deadlines = deadlines
        self._seconds = seconds
        self._error = error
        self._task: asyncio.Task[Any] | None = task
        self._cancelling = 0
        self.when = 0.0
        self.expired = False

    def __enter__(self) -> Deadline:
        task = self._task or asyncio.current_task()
        if task is None:
            raise RuntimeError("a Deadline must be entered in a task")
        self._task = task
        self._cancelling = task.cancelling()
        self.when = time.monotonic() + self._seconds
        self._deadlines._enter(self)
        return self

    def expire(self) -> None:
        if not self.expired:
            self.expired = True
            assert self._task is not None
            self._task.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._deadlines._exit(self)
        if self.expired:
            assert self._task is not None
            # As asyncio.timeout: ours to take back only if no other cancellation came since.
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                if self._error is not None:
                    raise self._error() from None
                raise TimeoutError from exc
