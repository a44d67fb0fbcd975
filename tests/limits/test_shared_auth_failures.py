"""Failed authentications counted in Redis across instances: the instance that sees the failure
that reaches the limit refuses the address for the rest of Redis's window; with Redis away,
each instance still counts its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from genledger.limits.auth_failures import AuthFailures
from genledger.limits.shared_auth_failures import SharedAuthFailures
from tests.services import redis_url

pytestmark = pytest.mark.redis


@pytest.fixture
async def instances() -> AsyncIterator[tuple[SharedAuthFailures, SharedAuthFailures]]:
    url = redis_url()
    prefix = f"genledger-test:auth-failures:{uuid.uuid4().hex}:"
    one = SharedAuthFailures(AuthFailures(3, 30, exempt=["127.0.0.1"]), url, prefix=prefix)
    two = SharedAuthFailures(AuthFailures(3, 30), url, prefix=prefix)
    yield one, two
    await one.aclose()
    await two.aclose()


async def test_failures_seen_by_two_instances_add_up(instances):
    one, two = instances
    await one.failed("192.0.2.1")
    await one.failed("192.0.2.1")
    assert one.retry_after("192.0.2.1") is None and two.retry_after("192.0.2.1") is None
    await two.failed("192.0.2.1")  # the third in Redis, the first here
    wait = two.retry_after("192.0.2.1")
    assert wait is not None and 25 < wait <= 30
    assert one.retry_after("192.0.2.1") is None  # until it sees a failure itself
    await one.failed("192.0.2.1")
    assert one.retry_after("192.0.2.1") is not None
    assert two.retry_after("192.0.2.2") is None  # per address


async def test_exempt_addresses_touch_nothing(instances):
    one, _ = instances
    for _ in range(5):
        await one.failed("127.0.0.1")
    assert one.retry_after("127.0.0.1") is None


async def test_without_redis_each_instance_still_counts_its_own():
    failures = SharedAuthFailures(AuthFailures(2, 30), "redis://127.0.0.1:1/0")
    await failures.failed("192.0.2.9")
    await failures.failed("192.0.2.9")
    assert failures.retry_after("192.0.2.9") is not None
    await failures.aclose()
