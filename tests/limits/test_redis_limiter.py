"""The rate limiters themselves: tokens per minute in memory and on Redis, and Redis going away.

Against the shared Redis, each test has its own key prefix, so runs never see each other's
state. Outages use a redis-server of the test's own, stopped and started again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from genledger.limits import RateLimiter, RateLimits
from genledger.limits.ratelimit import MemoryRateLimiter
from genledger.limits.redis import RETRY_AFTER_OUTAGE_S, RedisRateLimiter
from tests.deadlines import eventually
from tests.services import RedisProcess, redis_url

TPM = RateLimits(tokens_per_minute=100)  # one token earns itself back in 600 ms


LOADED_HOST_TIMEOUT_S = 5.0


@pytest.fixture
def prefix() -> str:
    return f"genledger-test:{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[RateLimiter]:
    limiter: RateLimiter = (
        MemoryRateLimiter()
        if request.param == "memory"
        # A loaded host takes more than the product's 0.25 s to open 50 connections at once:
        # these tests are about what Redis keeps, not about how long it may take.
        else RedisRateLimiter(redis_url(), prefix=prefix, timeout_s=LOADED_HOST_TIMEOUT_S)
    )
    try:
        yield limiter
    finally:
        await limiter.aclose()


@pytest.fixture
async def inspect() -> AsyncIterator[aioredis.Redis]:
    """A client of the test's own, to read what the limiter left in Redis."""
    client = aioredis.from_url(redis_url(), decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def key_id() -> str:
    return str(uuid.uuid4())


async def test_tokens_used_refuse_the_next_request_until_earned_back(limiter: RateLimiter):
    key = key_id()
    assert (await limiter.acquire(key, TPM)).allowed
    await limiter.debit_tokens(key, TPM, 150)  # one request may overshoot: tokens are known afterwards
    started_ms = time.time() * 1000
    refused = await limiter.acquire(key, TPM)
    assert not refused.allowed
    assert (refused.reason, refused.limit, refused.remaining) == ("tokens", 100, 0)
    # 150 tokens take 90 s to earn back; a request needs one token's worth (0.6 s) below the
    # minute: 30.6 s from the debit, less the moments since.
    assert 29.0 < refused.retry_after_s <= 30.6
    assert started_ms + 88_000 < refused.reset_ms <= started_ms + 90_000 + 1_000


async def test_a_refusal_for_tokens_does_not_count_as_a_request(limiter: RateLimiter):
    key = key_id()
    both = RateLimits(requests_per_minute=2, tokens_per_minute=100)
    first = await limiter.acquire(key, both)
    assert first.allowed and (first.limit, first.remaining) == (2, 1)
    await limiter.debit_tokens(key, both, 200)
    for _ in range(3):
        assert (await limiter.acquire(key, both)).reason == "tokens"
    # The requests limit alone still has the second request left.
    second = await limiter.acquire(key, RateLimits(requests_per_minute=2))
    assert second.allowed and second.remaining == 0


async def test_concurrent_debits_all_count(limiter: RateLimiter):
    key = key_id()
    limits = RateLimits(tokens_per_minute=1_000)  # 60 ms a token
    await asyncio.gather(*(limiter.debit_tokens(key, limits, 12) for _ in range(50)))
    assert (await limiter.acquire(key, limits)).allowed  # 600 tokens: 36 s of the minute
    await asyncio.gather(*(limiter.debit_tokens(key, limits, 10) for _ in range(50)))
    # 1,100 tokens: 66 s, over the minute by 6 s (had any debit been lost, it would not be).
    refused = await limiter.acquire(key, limits)
    assert not refused.allowed and 5.0 < refused.retry_after_s <= 6.06


async def test_nothing_to_debit_writes_nothing(prefix: str, inspect: aioredis.Redis):
    limiter = RedisRateLimiter(redis_url(), prefix=prefix)
    key = key_id()
    try:
        await limiter.debit_tokens(key, TPM, 0)
        await limiter.debit_tokens(key, RateLimits(requests_per_minute=5), 500)  # no token limit
        assert await inspect.keys(f"{prefix}:*") == []
        await limiter.debit_tokens(key, RateLimits(tokens_per_minute=60), 30)  # a second a token
    finally:
        await limiter.aclose()
    assert await inspect.keys(f"{prefix}:*") == [f"{prefix}:{key}:tokens"]
    # The state expires once fully earned back (30 s), with a second to spare: nothing lingers.
    assert 29_000 < await inspect.pttl(f"{prefix}:{key}:tokens") <= 31_000


async def test_instances_share_the_tokens_used(prefix: str):
    one = RedisRateLimiter(redis_url(), prefix=prefix)
    two = RedisRateLimiter(redis_url(), prefix=prefix)
    key = key_id()
    try:
        await one.debit_tokens(key, TPM, 60)
        await two.debit_tokens(key, TPM, 60)
        # Neither debited the limit alone; together they did.
        refused = await one.acquire(key, TPM)
        assert not refused.allowed and refused.reason == "tokens"
        assert (await two.acquire(key, TPM)).reason == "tokens"
    finally:
        await one.aclose()
        await two.aclose()


def messages(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records if record.name == "genledger.limits")


@pytest.mark.parametrize("policy", ["open", "closed"])
async def test_token_debits_survive_redis_going_away_and_limits_come_back(
    redis_server: RedisProcess, prefix: str, policy: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="genledger.limits")
    limiter = RedisRateLimiter(redis_server.url, on_failure=policy, prefix=prefix)
    key = key_id()
    try:
        assert (await limiter.acquire(key, TPM)).allowed
        await limiter.debit_tokens(key, TPM, 10)

        redis_server.stop()
        # A finished request's tokens cannot be counted: the debit is dropped, never raised
        # to the request that already has its answer, and the outage is logged once.
        await limiter.debit_tokens(key, TPM, 1_000)
        await limiter.debit_tokens(key, TPM, 1_000)
        assert messages(caplog, "Redis unreachable") == 1
        during = await limiter.acquire(key, TPM)
        if policy == "closed":
            assert not during.allowed and during.reason == "unavailable"
            assert during.retry_after_s == RETRY_AFTER_OUTAGE_S
        else:
            assert during.allowed
        assert messages(caplog, "Redis unreachable") == 1

        redis_server.start()  # empty: the restarted server has no state and no scripts

        async def back() -> bool:
            await limiter.acquire(key, TPM)
            return messages(caplog, "Redis reachable again") == 1

        # The limiter tries Redis again by itself once its back-off is over.
        assert await eventually(back, within=RETRY_AFTER_OUTAGE_S + 5)
        assert messages(caplog, "Redis unreachable") == 1
        # The 2,000 tokens used during the outage were not counted, and debits count again
        # (their script is loaded anew on the new server).
        assert (await limiter.acquire(key, TPM)).allowed
        await limiter.debit_tokens(key, TPM, 150)
        refused = await limiter.acquire(key, TPM)
        assert not refused.allowed and (refused.reason, refused.limit) == ("tokens", 100)
    finally:
        await limiter.aclose()
