"""Real PostgreSQL and Redis for the tests: found, or skipped (or failed, when required).

``GENLEDGER_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns every skip for a missing
service into a failure, so CI cannot pass without having run them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_URLS = (
    os.environ.get("GENLEDGER_TEST_POSTGRES_URL", ""),
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
REDIS_URL = os.environ.get("GENLEDGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def services_required() -> bool:
    return os.environ.get("GENLEDGER_REQUIRE_SERVICES") == "1"


def unavailable(what: str) -> None:
    if services_required():
        pytest.fail(f"{what} is required (GENLEDGER_REQUIRE_SERVICES=1) but unavailable")
    pytest.skip(f"{what} unavailable")


async def _first_reachable_postgres() -> str | None:
    import asyncpg

    for url in filter(None, POSTGRES_URLS):
        try:
            connection = await asyncpg.connect(url, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            continue
        await connection.close()
        return url
    return None


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (or module), dropped afterwards."""
    admin_url = asyncio.run(_first_reachable_postgres())
    if admin_url is None:
        unavailable("PostgreSQL at 127.0.0.1:5432")
    assert admin_url is not None
    name = f"genledger_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def redis_url() -> str:
    """The shared Redis server's URL, or skip (fail under GENLEDGER_REQUIRE_SERVICES=1)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        unavailable("Redis at 127.0.0.1:6379")
    finally:
        client.close()
    return REDIS_URL
