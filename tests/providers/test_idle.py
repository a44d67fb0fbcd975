"""ReadDeadline: a read that waits too long fails; time between reads is the consumer's."""

from __future__ import annotations

import asyncio
import time
from unittest import mock

import aiohttp
import pytest

from genledger.providers.idle import ReadDeadline
from genledger.providers.transport import Stalled

LIMIT = 0.05


def reader() -> aiohttp.StreamReader:
    protocol = mock.Mock(_reading_paused=False)
    return aiohttp.StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())


async def read(content: aiohttp.StreamReader, deadline: ReadDeadline) -> bytes:
    deadline.start()
    try:
        return await content.readline()
    finally:
        deadline.stop()


async def test_a_read_that_waits_past_the_limit_fails_with_stalled():
    content = reader()
    deadline = ReadDeadline(content, LIMIT, "chunk")
    started = time.monotonic()
    with pytest.raises(Stalled, match=r"^no chunk for 0\.05s$"):
        await read(content, deadline)
    assert LIMIT <= time.monotonic() - started < 1


async def test_time_between_reads_is_not_counted():
    content = reader()
    deadline = ReadDeadline(content, LIMIT, "chunk")
    content.feed_data(b"a\nb\nc\n")
    for expected in (b"a\n", b"b\n", b"c\n"):
        assert await read(content, deadline) == expected
        await asyncio.sleep(2 * LIMIT)  # a slow consumer, not a stalled upstream
    deadline.cancel()


async def test_data_that_keeps_coming_within_the_limit_keeps_the_read_alive():
    content = reader()
    deadline = ReadDeadline(content, 4 * LIMIT, "chunk")

    async def trickle() -> None:
        for _ in range(10):  # 10 lines LIMIT apart: 2.5 limits in all, no gap near one
            await asyncio.sleep(LIMIT)
            content.feed_data(b"x\n")
        content.feed_eof()

    feeder = asyncio.create_task(trickle())
    lines = []
    while line := await read(content, deadline):
        lines.append(line)
    await feeder
    deadline.cancel()
    assert lines == [b"x\n"] * 10


async def test_a_shorter_limit_applies_to_the_next_read_at_once():
    content = reader()
    deadline = ReadDeadline(content, 30, "first chunk")
    content.feed_data(b"first\n")
    assert await read(content, deadline) == b"first\n"  # armed a timer 30 s out
    deadline.expect(LIMIT, "chunk")
    started = time.monotonic()
    with pytest.raises(Stalled, match=r"no chunk for 0\.05s"):
        await read(content, deadline)
    assert time.monotonic() - started < 1


async def test_a_cancelled_deadline_fails_nothing():
    content = reader()
    deadline = ReadDeadline(content, LIMIT, "chunk")
    deadline.start()
    deadline.cancel()
    await asyncio.sleep(3 * LIMIT)
    content.feed_data(b"late\n")
    assert await content.readline() == b"late\n"


async def test_a_stream_that_is_never_idle_still_ends_when_it_lasted_its_time():
    content = reader()
    deadline = ReadDeadline(content, 4 * LIMIT, "chunk", lasting=5 * LIMIT)

    async def trickle() -> None:
        while True:  # a line every LIMIT: never idle for 4 LIMITs
            await asyncio.sleep(LIMIT)
            content.feed_data(b"x\n")

    feeder = asyncio.create_task(trickle())
    started = time.monotonic()
    try:
        with pytest.raises(Stalled, match=r"^the stream lasted longer than 0\.25s$"):
            while True:
                await read(content, deadline)
    finally:
        feeder.cancel()
        deadline.cancel()
    assert 5 * LIMIT <= time.monotonic() - started < 1


async def test_a_read_started_after_the_stream_lasted_its_time_fails_at_once():
    content = reader()
    deadline = ReadDeadline(content, 10.0, "chunk", lasting=LIMIT)
    content.feed_data(b"a\n")
    await asyncio.sleep(2 * LIMIT)  # the consumer's time counts for the whole stream
    with pytest.raises(Stalled, match="lasted longer"):
        await read(content, deadline)
    deadline.cancel()
