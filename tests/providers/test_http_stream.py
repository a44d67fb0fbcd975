"""HttpUpstream.sse_data against a real aiohttp server: how lines are cut out of network reads,
how long a stream line may be, and how long a line may take to arrive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from genledger.config import ProviderConfig
from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.providers.http import HttpUpstream
from tests.fakes.runner import serve_app

MiB = 1024 * 1024


async def one_long_event(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: " + b"x" * int(request.query["size"]) + b"\n\ndata: [DONE]\n\n")
    await response.write_eof()
    return response


# What the upstream writes, one network write per item (a float is a pause in seconds).
SCRIPTS: dict[str, list[bytes | float]] = {
    "together": [b"data: one\n\ndata: two\n\n: ping\n\ndata: three\n\n"],
    "byte by byte": [bytes([b]) for b in b"data: one\n\ndata: two\n\n"],
    "split mid-line": [b"data: o", 0.01, b"ne\n", 0.01, b"\ndata: tw", 0.01, b"o\n\n"],
    "crlf": [b"data: one\r\n\r\ndata: two\r\n\r\n"],
    "no newline at the end": [b"data: one\n\ndata: two"],
    # Bytes keep coming, but the line never ends: the wait for a line is what is timed.
    "trickle": [b"data: one\n\n"] + [item for _ in range(40) for item in (b"x", 0.05)],
}


async def scripted(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for item in SCRIPTS[request.query["script"]]:
        if isinstance(item, float):
            await asyncio.sleep(item)
        else:
            await response.write(item)
    await response.write_eof()
    return response


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/stream", one_long_event)
    app.router.add_post("/scripted", scripted)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}/stream"


def failure(kind: FailureKind, message: str, **kwargs: Any) -> UpstreamFailure:
    return UpstreamFailure(kind, message, provider_name="Acme", **kwargs)


async def payloads(url: str, size: int = 0, **config: Any) -> list[bytes]:
    upstream = HttpUpstream(ProviderConfig(kind="openai", base_url=url, **config), {}, provider_name="Acme")
    try:
        target = f"{url}{'&' if '?' in url else '?'}size={size}"
        context, response = await upstream.open_stream(target, b"{}", failure, "Acme")
        try:
            return [data async for payloads in upstream.sse_data(response, failure) for data in payloads]
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


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("together", [b"one", b"two", b"three"]),
        ("byte by byte", [b"one", b"two"]),
        ("split mid-line", [b"one", b"two"]),
        ("crlf", [b"one", b"two"]),
        ("no newline at the end", [b"one", b"two"]),
    ],
)
async def test_events_are_cut_out_of_whatever_each_read_brings(server, script, expected):
    url = server.replace("/stream", "/scripted")
    assert await payloads(f"{url}?script={script}") == expected


async def test_a_line_that_trickles_in_without_ending_is_a_stall(server):
    # A byte every 50 ms for 2 s: each read gets data, but no line ends within the 0.5 s limit.
    url = server.replace("/stream", "/scripted")
    started = time.monotonic()
    with pytest.raises(UpstreamFailure) as caught:
        await payloads(f"{url}?script=trickle", stream_idle_timeout=0.5)
    assert caught.value.kind is FailureKind.TIMEOUT
    assert "no chunk for 0.5s" in caught.value.message
    assert time.monotonic() - started < 1.9


async def test_a_cookie_an_upstream_sets_never_rides_along_on_a_later_call():
    # One session serves every key: a cookie set for one caller's request must not reach the
    # upstream again with another's.
    seen: list[str | None] = []

    async def sets_a_cookie(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response({"ok": True})
        response.set_cookie("session", "caller-one", path="/")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", sets_a_cookie)
    async with serve_app(app) as port:
        # By name: a client that kept cookies would not keep one of a bare IP address anyway.
        url = f"http://localhost:{port}/v1"
        upstream = HttpUpstream(ProviderConfig(kind="openai", base_url=url), {}, provider_name="Acme")
        try:
            for _ in range(2):
                async with upstream.post(f"{url}/chat/completions", b"{}", failure) as response:
                    assert response.status == 200
                    assert response.headers["set-cookie"].startswith("session=caller-one")  # it was sent
        finally:
            await upstream.aclose()
    assert seen == [None, None]
