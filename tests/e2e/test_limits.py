"""Money and limits across two gateway instances on one PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from genledger.client import Client
from tests.e2e.conftest import MODEL, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key, run_with_ledger
from tests.services import postgres_database, redis_url

COMPLETION_PRICE = Decimal("0.60")
MAX_TOKENS = 10
# Prompt tokens are free here, so a request's worst case is exactly max_tokens completion tokens.
PRICES = {"prompt_price": "0", "completion_price": str(COMPLETION_PRICE)}
PER_REQUEST = MAX_TOKENS * COMPLETION_PRICE / 1_000_000  # USD
HELD_STREAM_S = 30.0


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIInThread]:
    with FakeOpenAIInThread() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh(fake: FakeOpenAIInThread) -> None:
    fake.reset()


@pytest.fixture(scope="module")
def instances(database: str, fake: FakeOpenAIInThread) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    settings = gateway_settings(
        database,
        fake.api_url,
        limits={"backend": "redis", "redis_url": redis_url(), "on_redis_failure": "closed"},
    )
    settings["models"][MODEL] = {"provider": "fake", "upstream_model": "fast", **PRICES}
    # A stream a test holds open against a stalled upstream stays open (and reserved) until the
    # test lets go, rather than until the usual 1 s read timeout strikes.
    settings["providers"]["fake"]["timeout"] = HELD_STREAM_S
    with GatewayServer.build(**settings) as one, GatewayServer.build(**settings) as two:
        yield one, two


def key(database: str, name: str, **kwargs) -> str:
    return create_key(database, f"{name}-{time.monotonic_ns()}", **kwargs)


def usd_pico(usd: Decimal) -> int:
    return int(usd * 10**12)


async def burst(urls: list[str], secret: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def one(i: int) -> httpx.Response:
            return await http.post(
                urls[i % len(urls)] + "/chat/completions",
                json={
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "x"}],
                    "max_tokens": MAX_TOKENS,
                },
                headers={"Authorization": f"Bearer {secret}"},
            )

        return await asyncio.gather(*(one(i) for i in range(count)))


def key_state(database: str, secret: str):
    from genledger.core.ids import hash_key

    return run_with_ledger(database, lambda ledger: ledger.keys.find_by_hash(hash_key(secret)))


def generations_usage(database: str, key_id: str) -> int:
    from tests.ledger.records import charged_to

    return run_with_ledger(database, lambda ledger: charged_to(ledger, key_id))


def test_200_concurrent_requests_never_overspend_a_limit_for_50(instances, database):
    one, two = instances
    secret = key(database, "fifty", limit_pico=usd_pico(50 * PER_REQUEST))
    responses = asyncio.run(burst([one.base_url, two.base_url], secret, 200))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 50, 402: 150}, statuses
    for response in responses:
        if response.status_code == 402:
            error = response.json()["error"]
            assert error["metadata"]["limit_source"] in ("key_limit", "in_flight_budget")
    charged = sum(Decimal(str(r.json()["usage"]["cost"])) for r in responses if r.status_code == 200)
    assert charged == 50 * PER_REQUEST
    state = key_state(database, secret)
    assert state.usage_pico == usd_pico(50 * PER_REQUEST)
    assert state.usage_pico == generations_usage(database, state.id)
    assert state.reserved_pico == 0
    # Both instances served some of them, and each record is visible through either.
    generation_id = next(r.json()["id"] for r in responses if r.status_code == 200)
    for instance in (one, two):
        with Client(api_key=secret, base_url=instance.base_url) as client:
            assert client.generations.get_generation(id=generation_id).id == generation_id


def test_worst_case_above_actual_cost_refuses_nothing_once_settled(instances, database, fake):
    one, two = instances
    actual_tokens = 4
    fake.set_behavior("ok", tokens=actual_tokens)  # answers 4 tokens while 10 are reserved
    actual = usd_pico(actual_tokens * COMPLETION_PRICE / 1_000_000)
    limit = usd_pico(50 * PER_REQUEST)
    secret = key(database, "overestimate", limit_pico=limit)
    responses = asyncio.run(burst([one.base_url, two.base_url], secret, 200))
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) >= 50  # each costs 4/10 of its reservation, so more than 50 fit
    state = key_state(database, secret)
    assert state.usage_pico <= limit, "overspent"
    assert state.reserved_pico == 0
    assert state.usage_pico == generations_usage(database, state.id)
    assert state.usage_pico == len(ok) * actual
    # With nothing in flight, every request the remaining credit covers is admitted: exactly
    # those that leave a worst case's worth, then a 402. That bounds the loop.
    admissible = max(0, (limit - state.usage_pico - usd_pico(PER_REQUEST)) // actual + 1)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": MAX_TOKENS}
    with httpx.Client(base_url=one.base_url, headers={"Authorization": f"Bearer {secret}"}) as http:
        responses = [http.post("/chat/completions", json=body) for _ in range(admissible + 1)]
    assert [r.status_code for r in responses] == [200] * admissible + [402]
    assert responses[-1].json()["error"]["metadata"]["limit_source"] == "key_limit"
    final = key_state(database, secret)
    assert final.usage_pico == (len(ok) + admissible) * actual
    assert limit - final.usage_pico < usd_pico(PER_REQUEST)


def test_in_flight_reservations_refuse_with_retry_after(instances, database, fake):
    one, _ = instances
    secret = key(database, "inflight", limit_pico=usd_pico(PER_REQUEST * 3 / 2))
    # The first request is a stream the upstream leaves hanging after two chunks: while this
    # test holds it open, its worst case stays reserved, with no timing involved.
    fake.set_behavior("stall_mid_stream", times=1, delay=HELD_STREAM_S, chunks=2)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": MAX_TOKENS}
    with httpx.Client(
        base_url=one.base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=10
    ) as http:
        with http.stream("POST", "/chat/completions", json=body | {"stream": True}) as held:
            assert held.status_code == 200
            # Keep the iterator: dropping it mid-body would close the connection, ending the stream.
            lines = held.iter_lines()
            assert next(lines).startswith("data: {")
            second = http.post("/chat/completions", json=body)
        assert second.status_code == 402
        assert second.json()["error"]["metadata"]["limit_source"] == "in_flight_budget"
        assert second.headers["Retry-After"] == "1"
        # Leaving the stream settles its reservation (at what it used): the budget is back.
        deadline = time.monotonic() + 5
        while (reserved := key_state(database, secret).reserved_pico) != 0:
            assert time.monotonic() < deadline, f"still reserved after the stream ended: {reserved}"
            time.sleep(0.02)
        assert http.post("/chat/completions", json=body).status_code == 200


def test_requests_per_minute_hold_across_instances(instances, database):
    one, two = instances
    secret = key(database, "rpm", requests_per_minute=10)
    statuses = []
    with httpx.Client(headers={"Authorization": f"Bearer {secret}"}) as http:
        for i in range(15):
            url = (one if i % 2 else two).base_url
            response = http.post(
                url + "/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                limited = response
    assert statuses[:10] == [200] * 10
    assert statuses[10:] == [429] * 5
    assert limited.json()["error"]["code"] == 429
    assert limited.headers["X-RateLimit-Limit"] == "10"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    reset_ms = int(limited.headers["X-RateLimit-Reset"])
    assert time.time() * 1000 < reset_ms <= time.time() * 1000 + 61_000
    assert 1 <= int(limited.headers["Retry-After"]) <= 7  # one request's worth of a 10/min limit


def test_disabling_through_the_management_api_takes_effect(instances, database):
    one, _ = instances
    admin = key(database, "admin", management=True)
    user = key(database, "user")
    from genledger.core.ids import hash_key

    with httpx.Client(base_url=one.base_url) as http:
        ok = http.get("/key", headers={"Authorization": f"Bearer {user}"})
        assert ok.status_code == 200
        patched = http.patch(
            f"/keys/{hash_key(user)}", json={"disabled": True}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert patched.status_code == 200 and patched.json()["data"]["disabled"] is True
        refused = http.get("/key", headers={"Authorization": f"Bearer {user}"})
        assert refused.status_code == 401
