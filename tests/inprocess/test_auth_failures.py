"""Failed authentications from one address: 429 with Retry-After (header and envelope) once
there were too many, for every request from it, until the window ends; other addresses and
exempt ones are not affected."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genledger.api import create_app
from genledger.config import load_settings
from tests.inprocess.stores import MemoryGenerationStore, MemoryKeyStore, memory_services

LIMIT = 3


async def _client(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 4242))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Any, str]]:
    settings = load_settings(None, limits={"auth_failures": LIMIT, "auth_failure_window": 60})
    keys = MemoryKeyStore()
    services = memory_services(settings, keys, MemoryGenerationStore(keys))
    _, secret = await keys.create("honest")
    yield create_app(settings, services, log_write=lambda line: None), secret
    await services.aclose()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_too_many_failures_from_an_address_get_429_until_the_window_ends(gateway):
    app, secret = gateway
    async with await _client(app, "203.0.113.7") as guesser, await _client(app, "203.0.113.8") as other:
        for i in range(LIMIT):
            response = await guesser.get("/api/v1/key", headers=bearer(f"sk-gl-v1-guess-{i}"))
            assert response.status_code == 401
        refused = await guesser.get("/api/v1/key", headers=bearer(secret))  # even with a good key
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == 429 and error["metadata"]["reason"] == "authentication_failures"
        assert 55 <= error["metadata"]["retry_after"] <= 60
        assert refused.headers["retry-after"] == str(error["metadata"]["retry_after"])
        assert "x-request-id" in refused.headers
        assert (await other.get("/api/v1/key", headers=bearer(secret))).status_code == 200
        app.auth_failures._clock = lambda: float("inf")  # the window is over
        assert (await guesser.get("/api/v1/key", headers=bearer(secret))).status_code == 200


async def test_a_missing_or_malformed_header_and_the_dashboard_sign_in_count_too(gateway):
    app, _ = gateway
    async with await _client(app, "198.51.100.1") as guesser:
        assert (await guesser.get("/api/v1/key")).status_code == 401
        assert (await guesser.get("/api/v1/key", headers={"Authorization": "Basic x"})).status_code == 401
        form = await guesser.get("/dashboard/sign-in")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        signed = await guesser.post("/dashboard/sign-in", data={"csrf": token.group(1), "key": "sk-gl-v1-no"})
        assert signed.status_code == 401
        assert (await guesser.get("/health")).status_code == 429


async def test_loopback_is_exempt_by_default(gateway):
    app, _ = gateway
    async with await _client(app, "127.0.0.1") as local:
        for _ in range(LIMIT + 2):
            assert (await local.get("/api/v1/key")).status_code == 401


@pytest.mark.redis
async def test_with_redis_limits_two_apps_count_the_failures_together():
    from tests.services import redis_url

    limits = {"auth_failures": 2, "backend": "redis", "redis_url": redis_url(), "auth_failures_exempt": []}
    settings = load_settings(None, limits=limits)
    keys = MemoryKeyStore()
    services = memory_services(settings, keys, MemoryGenerationStore(keys))
    address = f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    apps = [create_app(settings, services, log_write=lambda line: None) for _ in range(2)]
    try:
        async with await _client(apps[0], address) as one, await _client(apps[1], address) as two:
            assert (await one.get("/api/v1/key")).status_code == 401
            assert (await two.get("/api/v1/key")).status_code == 401  # the second, in Redis
            assert (await two.get("/api/v1/key")).status_code == 429
    finally:
        for app in apps:
            await app.auth_failures.aclose()
        await services.aclose()


async def test_guesses_on_the_messages_route_count_and_its_refusal_is_in_anthropics_shape(gateway):
    app, secret = gateway
    body = {"model": "genledger/demo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    async with await _client(app, "203.0.113.9") as guesser:
        for i in range(LIMIT):
            guess = await guesser.post("/api/v1/messages", json=body, headers={"x-api-key": f"no-{i}"})
            assert guess.status_code == 401 and guess.json()["type"] == "error"
        refused = await guesser.post("/api/v1/messages", json=body, headers={"x-api-key": secret})
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
