"""EventStreamResponse as a bare ASGI app: frames out in order, and a caller that leaves stops them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from genledger.api.event_stream import MAX_HELD_FRAMES, EventStreamResponse
from genledger.core.read_batches import before_waiting, current_batch, hold_to_the_end

SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "method": "GET"}


class Caller:
    """The server's side of one request: what was sent, and a way to leave."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.body_read = False

    async def receive(self) -> dict[str, Any]:
        if not self.body_read:
            self.body_read = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message["more_body"]:
            self.gone.set()  # as uvicorn does: after the last byte, receive() says disconnect

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def test_every_frame_goes_out_in_order_then_the_answer_ends():
    async def frames() -> AsyncIterator[bytes]:
        for n in range(3):
            yield b"data: %d\n\n" % n

    caller = Caller()
    await EventStreamResponse(frames(), headers={"X-Extra": "1"})(SCOPE, caller.receive, caller.send)
    start = caller.sent[0]
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-extra"] == b"1"
    assert caller.bodies == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]


async def test_frames_of_one_read_go_out_together_and_none_waits_for_the_next_read():
    caller = Caller()
    sent_at_the_wait: list[list[bytes]] = []

    async def frames() -> AsyncIterator[bytes]:
        batch = current_batch()  # the writer's, as a provider iterated by it sees it
        assert batch is not None
        for n, more in ((0, True), (1, True), (2, False)):
            batch.more = more
            yield b"%d;" % n
        batch.more = True
        yield b"3;"  # held: more are said to follow...
        await before_waiting(current_batch())  # ...but the provider is about to wait
        sent_at_the_wait.append(list(caller.bodies))
        await asyncio.sleep(0.01)
        yield b"4;"

    await EventStreamResponse(frames())(SCOPE, caller.receive, caller.send)
    assert caller.bodies == [b"0;1;2;", b"3;", b"4;", b""]
    assert sent_at_the_wait == [[b"0;1;2;", b"3;"]]


async def test_a_read_of_many_events_is_written_in_bounded_groups():
    caller = Caller()

    async def frames() -> AsyncIterator[bytes]:
        batch = current_batch()
        assert batch is not None
        for _ in range(MAX_HELD_FRAMES * 2 + 1):
            batch.more = True  # never said to end: the bound and the stream's end write them
            yield b"x"

    await EventStreamResponse(frames())(SCOPE, caller.receive, caller.send)
    # The one left over goes out with the end of the body.
    assert caller.bodies == [b"x" * MAX_HELD_FRAMES, b"x" * MAX_HELD_FRAMES, b"x"]
    assert caller.sent[-1]["more_body"] is False


async def test_what_is_held_at_the_end_goes_out_with_the_end_of_the_body():
    caller = Caller()

    async def frames() -> AsyncIterator[bytes]:
        yield b"0;"  # written as it comes
        hold_to_the_end()
        for n in (1, 2, 3):
            yield b"%d;" % n

    await EventStreamResponse(frames())(SCOPE, caller.receive, caller.send)
    assert [(m["body"], m["more_body"]) for m in caller.sent[1:]] == [(b"0;", True), (b"1;2;3;", False)]


async def test_no_batch_outside_a_writer():
    assert current_batch() is None
    await before_waiting(current_batch())  # nothing to write: no effect
    hold_to_the_end()  # nothing to hold: no effect
    assert current_batch() is None


async def test_a_caller_who_leaves_stops_the_frames_and_the_app_returns_normally():
    closed = asyncio.Event()
    second_wanted = asyncio.Event()

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b"data: first\n\n"
            second_wanted.set()
            await asyncio.Event().wait()  # an upstream that never sends again
            yield b"data: never\n\n"
        finally:
            closed.set()

    caller = Caller()
    answer = asyncio.create_task(EventStreamResponse(frames())(SCOPE, caller.receive, caller.send))
    await asyncio.wait_for(second_wanted.wait(), 5)
    caller.gone.set()
    await asyncio.wait_for(answer, 5)  # no CancelledError escapes
    assert closed.is_set()
    assert caller.bodies == [b"data: first\n\n"]
    assert not answer.cancelled()


async def test_a_caller_who_leaves_while_a_frame_is_being_sent_closes_the_frames_too():
    closed = asyncio.Event()

    async def frames() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: more\n\n"
        finally:
            closed.set()

    caller = Caller()
    stuck = asyncio.Event()

    async def slow_send(message: dict[str, Any]) -> None:
        caller.sent.append(message)
        if len(caller.sent) == 3:
            stuck.set()
            await asyncio.Event().wait()  # a full socket buffer

    answer = asyncio.create_task(EventStreamResponse(frames())(SCOPE, caller.receive, slow_send))
    await asyncio.wait_for(stuck.wait(), 5)
    caller.gone.set()
    await asyncio.wait_for(answer, 5)
    assert closed.is_set()


async def test_a_cancellation_from_elsewhere_is_not_swallowed():
    waiting = asyncio.Event()

    async def frames() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        waiting.set()
        await asyncio.Event().wait()
        yield b"data: never\n\n"  # pragma: no cover

    caller = Caller()
    answer = asyncio.create_task(EventStreamResponse(frames())(SCOPE, caller.receive, caller.send))
    await asyncio.wait_for(waiting.wait(), 5)
    answer.cancel()  # the server shutting down, say
    done, _ = await asyncio.wait([answer], timeout=5)
    assert answer in done and answer.cancelled()
