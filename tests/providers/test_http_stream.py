"""HttpUpstream.sse_data against a real aiohttp server: how long a stream line may be."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from genledger.config import ProviderConfig
from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.providers.http import HttpUpstream

MiB = 1024 * 1024


async def one_long_event(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: " + b"x" * int(request.query["size"]) + b"\n\ndata: [DONE]\n\n")
    await response.write_eof()
    return response


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/stream", one_long_event)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/stream"
    finally:
        await runner.cleanup()


def failure(kind: FailureKind, message: str, **kwargs: Any) -> UpstreamFailure:
    return UpstreamFailure(kind, message, provider_name="Acme", **kwargs)


async def payloads(url: str, size: int) -> list[bytes]:
    upstream = HttpUpstream(ProviderConfig(kind="openai", base_url=url), {}, provider_name="Acme")
    try:
        context, response = await upstream.open_stream(f"{url}?size={size}", b"{}", failure, "Acme")
        try:
            return [data async for data in upstream.sse_data(response, failure)]
        finally:
            await context.__aexit__(None, None, None)
    finally:
        await upstream.aclose()


async def test_a_stream_line_up_to_a_mebibyte_is_read(server):
    # aiohttp's own limit is half that: a large base64 image in one chunk used to break here.
    data = await payloads(server, MiB - 100)
    assert [len(d) for d in data] == [MiB - 100, len(b"[DONE]")]


async def test_a_longer_line_is_an_invalid_response_not_an_internal_error(server):
    with pytest.raises(UpstreamFailure) as caught:
        await payloads(server, 2 * MiB)
    assert caught.value.kind is FailureKind.INVALID_RESPONSE
    assert caught.value.message == "Acme: oversized line"
