"""In process: Idempotency-Key's edges (no store, a bad key, a failed first call, an answer
too large to keep) and GET /api/v1/statements, on in-memory stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import orjson
import pytest

from genledger.api import create_app
from genledger.config import load_settings
from genledger.core.generation import Generation
from genledger.core.idempotency import Claimed, fingerprint
from genledger.gateway.services import Services
from genledger.gateway.statements import StatementBook
from tests.inprocess.stores import (
    MemoryGenerationStore,
    MemoryIdempotencyStore,
    MemoryKeyStore,
    MemoryStatementStore,
    memory_services,
)

BODY = {"model": "genledger/demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@dataclass
class App:
    http: httpx.AsyncClient
    services: Services
    generations: MemoryGenerationStore
    secret: str
    admin: str


async def build(*, idempotency: bool = True, max_bytes: int = 1 << 20) -> AsyncIterator[App]:
    settings = load_settings(None)
    keys = MemoryKeyStore()
    generations = MemoryGenerationStore(keys)
    services = memory_services(
        settings,
        keys,
        generations,
        statements=MemoryStatementStore(),
        idempotency=MemoryIdempotencyStore() if idempotency else None,
        idempotency_max_bytes=max_bytes,
    )
    _, secret = await keys.create("app", limit_pico=10**12)
    _, admin = await keys.create("admin", management=True)
    transport = httpx.ASGITransport(app=create_app(settings, services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield App(http, services, generations, secret, admin)
    await services.aclose()


@pytest.fixture
async def app() -> AsyncIterator[App]:
    async for built in build():
        yield built


def headers(secret: str, key: str | None = None) -> dict[str, str]:
    found = {"Authorization": f"Bearer {secret}"}
    if key is not None:
        found["Idempotency-Key"] = key
    return found


async def test_a_first_call_that_fails_frees_its_idempotency_key(app: App):
    bad = await app.http.post(
        "/api/v1/chat/completions", json={"model": "nope", "messages": []}, headers=headers(app.secret, "k")
    )
    assert bad.status_code == 400
    good = await app.http.post("/api/v1/chat/completions", json=BODY, headers=headers(app.secret, "k"))
    assert good.status_code == 200 and "Idempotent-Replayed" not in good.headers
    again = await app.http.post("/api/v1/chat/completions", json=BODY, headers=headers(app.secret, "k"))
    assert again.content == good.content and again.headers["Idempotent-Replayed"] == "true"
    assert len(app.generations.generations) == 1


async def test_a_retry_while_a_long_stream_still_runs_is_a_409_not_a_second_call(app: App):
    """A stream may run the total timeout and then its stream_timeout (about 20 minutes by
    default): a claim taken 15 minutes ago may still be running, and a retry is refused."""
    store = app.services.idempotency
    assert store is not None
    key = await app.services.auth.authenticate(f"Bearer {app.secret}")
    body = {**BODY, "stream": True}
    call = fingerprint("/api/v1/chat/completions", orjson.dumps(body))
    began = datetime.now(UTC) - timedelta(minutes=15)
    assert await store.claim(key.id, "long", call, began, app.services.idempotency_lease) == Claimed()
    retry = await app.http.post("/api/v1/chat/completions", json=body, headers=headers(app.secret, "long"))
    assert retry.status_code == 409 and "still running" in retry.json()["error"]["message"]
    assert app.generations.generations == {}


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_a_bad_idempotency_key_is_a_400_naming_it(app: App, key: str):
    response = await app.http.post("/api/v1/chat/completions", json=BODY, headers=headers(app.secret, key))
    assert response.status_code == 400
    assert response.json()["error"]["metadata"] == {"param": "Idempotency-Key"}
    assert app.generations.generations == {}


async def test_without_a_store_the_header_is_refused_not_ignored():
    async for app in build(idempotency=False):
        response = await app.http.post(
            "/api/v1/chat/completions", json=BODY, headers=headers(app.secret, "k")
        )
        assert response.status_code == 400 and "keeps no idempotency keys" in response.text
        plain = await app.http.post("/api/v1/chat/completions", json=BODY, headers=headers(app.secret))
        assert plain.status_code == 200


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_too_large_to_keep_is_never_run_twice(stream: bool):
    async for app in build(max_bytes=64):
        body = {**BODY, "stream": stream}
        first = await app.http.post("/api/v1/chat/completions", json=body, headers=headers(app.secret, "big"))
        assert first.status_code == 200 and len(first.content) > 64
        retry = await app.http.post("/api/v1/chat/completions", json=body, headers=headers(app.secret, "big"))
        assert retry.status_code == 409 and "charged once" in retry.json()["error"]["message"]
        assert "Retry-After" not in retry.headers
        assert len(app.generations.generations) == 1


async def test_statements_are_listed_for_management_keys_only(app: App):
    key = await app.services.auth.authenticate(f"Bearer {app.secret}")
    day = date(2026, 11, 2)
    at = datetime(2026, 11, 2, 12, tzinfo=UTC)
    await app.generations.record(
        Generation(id="gen-1", key_id=key.id, created_at=at, model="m", charge_pico=5 * 10**12)
    )
    assert app.services.statements is not None
    sealed = await StatementBook(app.generations, app.services.statements).close(day, grace=timedelta(0))
    refused = await app.http.get("/api/v1/statements", headers=headers(app.secret))
    assert refused.status_code == 403
    assert refused.json()["error"]["message"].startswith("Only management keys may read the statements")
    listed = (await app.http.get("/api/v1/statements", headers=headers(app.admin))).json()["data"]
    assert listed == [
        {
            "day": "2026-11-02",
            "closed_at": sealed.closed_at.isoformat(),
            "record_count": 1,
            "hash": sealed.hash,
            "previous_hash": "0" * 64,
            "totals": [{"api_key_hash": key.hash, "model": "m", "requests": 1, "usage": 5.0}],
        }
    ]
