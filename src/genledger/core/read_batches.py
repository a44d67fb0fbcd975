"""What an upstream delivered in one network read goes to the caller in one write.

A fast upstream often delivers several events in one read. Written one by one, each frame
cost the relay a call through the ASGI server and a system call of its own; the bare
pass-through (``../shared/bench-floor/``) writes once per read. So the task that writes a
stream to its caller (``api/event_stream.py``) opens a :class:`ReadBatch` for itself, and the
provider that reads the upstream, running in that task as it is iterated, says as it yields
each event whether more from the same read follow (:attr:`ReadBatch.more`); before it waits
for the network again, it has what is held written (:func:`before_waiting`). The writer
holds a frame back only while more follow, so no frame ever waits for the network. What the
gateway adds once the upstream is done and the generation recorded (the usage, ``[DONE]``) is
held to the end (:func:`hold_to_the_end`) and goes out with the end of the body, in one write.

A provider that says nothing (the demo provider) has each frame written as it comes; so
has a stream no writer batches (the batch is ``None`` outside a writer's task).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar


class ReadBatch:
    """The frames a writer holds back, and whether more from the same read follow."""

    __slots__ = ("_flush", "more")

    def __init__(self, flush: Callable[[], Awaitable[None]]) -> None:
        self.more = False
        self._flush = flush

    async def flush(self) -> None:
        """Write what is held, and hold nothing more until told that more follow."""
        self.more = False
        await self._flush()


_BATCH: ContextVar[ReadBatch | None] = ContextVar("genledger_read_batch", default=None)


def open_batch(flush: Callable[[], Awaitable[None]]) -> ReadBatch:
    """A batch for the current task (a stream's writer), which ``flush`` writes out."""
    batch = ReadBatch(flush)
    _BATCH.set(batch)
    return batch


def current_batch() -> ReadBatch | None:
    """The batch of the writer iterating this stream, if any."""
    return _BATCH.get()


async def before_waiting(batch: ReadBatch | None) -> None:
    """Have what ``batch`` holds written: its provider is about to wait (or to end)."""
    if batch is not None:
        await batch.flush()


def hold_to_the_end() -> None:
    """What the stream yields from now on follows without a wait: the writer holds it and
    writes it with the end of the body."""
    batch = _BATCH.get()
    if batch is not None:
        batch.more = True
