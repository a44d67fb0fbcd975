"""Rate limits on one instance (in memory), and what happens when Redis goes away and comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import MODEL, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key
from tests.services import RedisProcess, redis_url

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "count my tokens"}], "max_tokens": 10}


def post(gateway: GatewayServer, secret: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(
        gateway.base_url + "/chat/completions",
        json=body or BODY,
        headers={"Authorization": f"Bearer {secret}"},
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIInThread]:
    with FakeOpenAIInThread() as upstream:
        yield upstream


def test_tokens_per_minute_refuse_once_used_up(tmp_path, fake):
    database = f"sqlite:///{tmp_path}/ledger.db"
    secret = create_key(database, "tpm", tokens_per_minute=50)
    with GatewayServer.build(**gateway_settings(database, fake.api_url)) as gateway:
        statuses = [post(gateway, secret).status_code for _ in range(6)]
        refused = post(gateway, secret)
    # Each request uses 10 completion tokens and a few prompt tokens: the fourth or fifth
    # exhausts 50 a minute, and later ones wait.
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    assert refused.status_code == 429
    assert refused.json()["error"]["metadata"]["limit_source"] == "tokens"
    assert refused.headers["X-RateLimit-Limit"] == "50"
    assert int(refused.headers["Retry-After"]) >= 1


def test_tokens_per_minute_are_shared_by_instances_through_redis(tmp_path, fake):
    database = f"sqlite:///{tmp_path}/ledger.db"
    secret = create_key(database, "shared-tpm", tokens_per_minute=80)
    settings = gateway_settings(database, fake.api_url, limits={"backend": "redis", "redis_url": redis_url()})
    body = {**BODY, "max_tokens": 20}  # about 24 tokens a request, with the prompt's
    with GatewayServer.build(**settings) as one, GatewayServer.build(**settings) as two:
        responses = [post(gateway, secret, body) for gateway in (one, two, one, two, one)]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    used = [r.json()["usage"]["total_tokens"] for r in responses[:4]]
    # Neither instance used 80 tokens by itself; both debit one count in Redis, and the
    # first instance refuses on what the other used too.
    assert used[0] + used[2] < 80 and used[1] + used[3] < 80 <= sum(used)
    refused = responses[4]
    assert refused.json()["error"]["metadata"]["limit_source"] == "tokens"
    assert refused.headers["X-RateLimit-Limit"] == "80"


def test_a_configured_default_applies_to_every_key(tmp_path, fake):
    database = f"sqlite:///{tmp_path}/ledger.db"
    secret = create_key(database, "default")
    own = create_key(database, "own", requests_per_minute=5)
    settings = gateway_settings(database, fake.api_url, limits={"requests_per_minute": 2})
    with GatewayServer.build(**settings) as gateway:
        assert [post(gateway, secret).status_code for _ in range(3)] == [200, 200, 429]
        assert [post(gateway, own).status_code for _ in range(6)] == [200] * 5 + [429]


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(check, within: float = 5.0):
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_redis_going_away_and_coming_back(tmp_path, fake, redis_server: RedisProcess, caplog):
    database = f"sqlite:///{tmp_path}/ledger.db"
    secret = create_key(database, "shared", requests_per_minute=1000)
    limited = create_key(database, "limited", requests_per_minute=2)
    closed = gateway_settings(
        database,
        fake.api_url,
        limits={"backend": "redis", "redis_url": redis_server.url, "on_redis_failure": "closed"},
    )
    opened = gateway_settings(
        database,
        fake.api_url,
        limits={"backend": "redis", "redis_url": redis_server.url, "on_redis_failure": "open"},
    )
    with GatewayServer.build(**closed) as strict, GatewayServer.build(**opened) as lenient:
        assert post(strict, secret).status_code == 200
        assert post(lenient, secret).status_code == 200

        redis_server.stop()
        refused = post(strict, secret)
        assert refused.status_code == 429
        assert "unavailable" in refused.json()["error"]["message"]
        assert refused.headers["Retry-After"] == "1"
        assert post(lenient, secret).status_code == 200  # fail open: served, not limited
        assert post(lenient, secret).status_code == 200

        redis_server.start()
        # Both recover by themselves once Redis answers again (after a short back-off).
        assert wait_for(lambda: post(strict, secret).status_code == 200)
        assert [post(strict, limited).status_code for _ in range(2)] == [200, 200]
        assert post(lenient, limited).status_code == 429  # the limit is shared again
    assert any("Redis unreachable" in r.getMessage() for r in caplog.records)
