"""A provider's stream closes what it reads from as it ends, however it ends: nothing is left
for the garbage collector's async-generator hook (which closes it later, in a task of its own,
with its read timer armed until then), and the upstream connection goes back to the pool."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from genledger.api.wire import parse_chat_request
from genledger.config import ProviderConfig
from genledger.core.failures import UpstreamFailure
from genledger.providers.base import UpstreamCall
from genledger.providers.openai_compat import OpenAICompatProvider
from tests.fakes.runner import serve_app
from tests.providers.test_read_batches import chunk

PEERS = web.AppKey("peers", list)
REQUEST = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'


async def answers(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    script = (await request.json())["model"]  # the test's script, sent as the upstream model
    request.app[PEERS].append(request.transport.get_extra_info("peername"))
    await response.write(chunk("a"))
    if script == "broken":
        await response.write(b"data: {not json\n\n")
    elif script == "whole":
        await response.write(chunk("b", "stop") + chunk(usage=True) + b"data: [DONE]\n\n")
    else:  # "unfinished": the body ends before the stream does
        await response.write(chunk("b"))
    await response.write_eof()
    return response


@contextlib.contextmanager
def finalized() -> Iterator[list[str]]:
    """The names of async generators the event loop's finalizer hook is handed meanwhile.

    Entered in the test itself: the loop sets its own hooks each time it starts running.
    """
    names: list[str] = []
    hooks = sys.get_asyncgen_hooks()

    def finalizer(agen) -> None:
        names.append(agen.__qualname__)
        hooks.finalizer(agen)

    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
    try:
        yield names
    finally:
        sys.set_asyncgen_hooks(*hooks)


@pytest.fixture
async def provider() -> AsyncIterator[tuple[OpenAICompatProvider, web.Application]]:
    app = web.Application()
    app[PEERS] = []
    app.router.add_post("/v1/chat/completions", answers)
    async with serve_app(app) as port:
        provider = OpenAICompatProvider(
            "fake", ProviderConfig(kind="openai", base_url=f"http://127.0.0.1:{port}/v1")
        )
        try:
            yield provider, app
        finally:
            await provider.aclose()


async def _settle() -> None:
    # The hook is handed an unfinished generator as its last reference goes (no collection
    # needed: a full one in the suite's big process takes most of a second), and closes it in
    # a task of its own.
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.mark.parametrize("script", ["whole", "broken", "unfinished"])
async def test_a_stream_read_to_its_end_leaves_nothing_open(provider, script) -> None:
    provider, app = provider
    with finalized() as names:
        for _ in range(2):
            stream = await provider.stream(UpstreamCall(parse_chat_request(REQUEST), script))
            try:
                async for _ in stream:
                    pass
            except UpstreamFailure:
                assert script != "whole"
            else:
                assert script == "whole"
            del stream
            await _settle()
    assert names == []
    if script == "whole":  # its connection went back to the pool: the second stream took it
        assert app[PEERS][0] == app[PEERS][1]


async def test_a_stream_the_caller_leaves_early_leaves_nothing_open(provider) -> None:
    provider, _ = provider
    with finalized() as names:
        stream = await provider.stream(UpstreamCall(parse_chat_request(REQUEST), "whole"))
        async for _ in stream:
            break  # the caller went away after the first event
        await stream.aclose()  # as the gateway's relay closes it
        del stream
        await _settle()
    assert names == []
