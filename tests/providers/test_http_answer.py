"""HttpUpstream.answer against a real aiohttp server: a non-streamed answer is timed whole."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from genledger import __version__
from genledger.config import ProviderConfig
from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.providers.http import HttpUpstream
from tests.fakes.runner import serve_app

LIMIT_S = 0.5


async def trickling(request: web.Request) -> web.StreamResponse:
    # Bytes keep coming, one every 50 ms for 1.5 s: no single read waits long, the answer does.
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for _ in range(30):
        await response.write(b" ")
        await asyncio.sleep(0.05)
    await response.write(b"{}")
    await response.write_eof()
    return response


async def silent(request: web.Request) -> web.Response:
    await asyncio.sleep(1.5)  # (the server waits for it on the way out)
    return web.json_response({})


async def prompt(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def echo_headers(request: web.Request) -> web.Response:
    return web.json_response({"user_agents": request.headers.getall("User-Agent", [])})


async def busy(request: web.Request) -> web.Response:
    return web.json_response({"error": {"type": "rate_limit", "message": "slow down"}}, status=429)


async def echoes_the_key(request: web.Request) -> web.Response:
    # Some servers quote the key they refused, whole: it must reach no caller of the gateway.
    key = request.headers["Authorization"].removeprefix("Bearer ")
    error = {"type": "auth", "message": f"Incorrect API key provided: {key}"}
    return web.json_response({"error": error}, status=401)


async def echoes_the_key_as_text(request: web.Request) -> web.Response:
    return web.Response(text=f"bad key {request.headers['Authorization']}", status=401)


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in (
        ("/trickling", trickling),
        ("/silent", silent),
        ("/prompt", prompt),
        ("/busy", busy),
        ("/headers", echo_headers),
        ("/echoes-the-key", echoes_the_key),
        ("/echoes-the-key-as-text", echoes_the_key_as_text),
    ):
        app.router.add_post(path, handler)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}"


def failure(kind: FailureKind, message: str, **kwargs: Any) -> UpstreamFailure:
    return UpstreamFailure(kind, message, provider_name="Acme", **kwargs)


async def answer(url: str, headers: dict[str, str] | None = None) -> bytes:
    config = ProviderConfig(kind="openai", base_url=url, timeout=LIMIT_S)
    upstream = HttpUpstream(config, headers or {}, provider_name="Acme")
    try:
        return await upstream.answer(url, b"{}", failure, "Acme")
    finally:
        await upstream.aclose()


@pytest.mark.parametrize("path", ["/trickling", "/silent"])
async def test_an_answer_that_does_not_end_within_the_timeout_is_a_timeout(base, path):
    started = time.monotonic()
    with pytest.raises(UpstreamFailure) as caught:
        await answer(base + path)
    elapsed = time.monotonic() - started
    assert caught.value.kind is FailureKind.TIMEOUT
    assert caught.value.message == f"Acme: timed out (no response for {LIMIT_S:g}s)"
    assert LIMIT_S <= elapsed < 1.2  # the trickle would have taken 1.5 s


async def test_an_answer_in_time_is_its_body(base):
    assert await answer(base + "/prompt") == b'{"ok": true}'


async def test_an_error_status_is_the_failure_it_stands_for(base):
    with pytest.raises(UpstreamFailure) as caught:
        await answer(base + "/busy")
    assert caught.value.kind is FailureKind.RATE_LIMITED
    assert caught.value.upstream_status == 429
    assert "slow down" in caught.value.message


async def test_the_gateway_names_itself_to_the_upstream_once(base):
    body = await answer(base + "/headers", {"Authorization": "Bearer sk-up"})
    assert orjson.loads(body) == {"user_agents": [f"genledger/{__version__}"]}


async def test_a_user_agent_of_the_provider_s_own_is_sent_instead(base):
    body = await answer(base + "/headers", {"user-agent": "acme-proxy/2"})
    assert orjson.loads(body) == {"user_agents": ["acme-proxy/2"]}


@pytest.mark.parametrize("path", ["/echoes-the-key", "/echoes-the-key-as-text"])
async def test_an_error_that_quotes_the_provider_s_key_does_not_pass_it_on(base, monkeypatch, path):
    monkeypatch.setenv("ACME_KEY", "sk-acme-secret-7f3a")
    config = ProviderConfig(kind="openai", base_url=base, timeout=LIMIT_S, api_key_env="ACME_KEY")
    upstream = HttpUpstream(config, {"Authorization": "Bearer sk-acme-secret-7f3a"}, provider_name="Acme")
    try:
        with pytest.raises(UpstreamFailure) as caught:
            await upstream.answer(base + path, b"{}", failure, "Acme")
    finally:
        await upstream.aclose()
    assert caught.value.upstream_status == 401
    told = caught.value.message + orjson.dumps(caught.value.raw).decode()
    assert "sk-acme-secret-7f3a" not in told and "[redacted]" in told
