"""A provider's stream relayed by the event-stream writer: what one network read of the
upstream brought goes to the caller in one write, nothing is held across a wait, and what the
gateway adds at the end goes out with the end of the body."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from genledger.api.event_stream import EventStreamResponse
from genledger.api.wire import parse_chat_request
from genledger.config import ProviderConfig
from genledger.core.events import Identified, UsageReport
from genledger.core.read_batches import hold_to_the_end
from genledger.providers.base import UpstreamCall
from genledger.providers.openai_compat import OpenAICompatProvider
from tests.api.test_event_stream import SCOPE, Caller
from tests.fakes.runner import serve_app

PAUSE_S = 0.3


def chunk(text: str | None = None, finish: str | None = None, usage: bool = False) -> bytes:
    body: dict = {"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    body["choices"] = [] if usage else [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]
    if usage:
        body["usage"] = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def two_reads(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    # One write: one read, here. It ends with an event the relay does not pass on (the usage),
    # so the provider itself has what it held written before it waits.
    await response.write(chunk("a") + chunk("b") + chunk(usage=True))
    await asyncio.sleep(PAUSE_S)
    await response.write(chunk("d", "stop") + chunk(usage=True) + b"data: [DONE]\n\n")
    await response.write_eof()
    return response


class TimedCaller(Caller):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    async def send(self, message) -> None:
        self.times.append(time.monotonic())
        await super().send(message)


async def test_each_read_is_one_write_and_the_first_is_not_held_for_the_second() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", two_reads)
    async with serve_app(app) as port:
        provider = OpenAICompatProvider(
            "fake", ProviderConfig(kind="openai", base_url=f"http://127.0.0.1:{port}/v1")
        )
        request = parse_chat_request(
            b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
        )
        try:
            stream = await provider.stream(UpstreamCall(request, "m"))

            async def frames() -> AsyncIterator[bytes]:
                async for event in stream:
                    if not isinstance(event, UsageReport | Identified):  # as the gateway's relay
                        yield type(event).__name__.encode() + b";"
                await asyncio.sleep(0.01)  # the gateway records the generation...
                hold_to_the_end()
                yield b"Settled;"  # ...then sends the usage and the end
                yield b"[DONE];"

            caller = TimedCaller()
            started = time.monotonic()
            await EventStreamResponse(frames())(SCOPE, caller.receive, caller.send)
        finally:
            await provider.aclose()
    assert caller.bodies == [
        b"TextDelta;TextDelta;",
        b"TextDelta;Finish;",  # the last read, not held for the record
        b"Settled;[DONE];",  # what the gateway adds, and the end: one write
    ]
    assert caller.sent[-1]["more_body"] is False
    first_write = caller.times[1]  # [0] is the response's start
    assert first_write - started < PAUSE_S, "the first read waited for the second"
