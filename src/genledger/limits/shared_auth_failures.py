"""Failed authentications counted across instances in Redis; refused in each instance's memory.

Each failure is counted where it happened (:class:`AuthFailures`, so that an outage of Redis
still limits per instance) and in Redis, in a fixed window per address (one round trip:
``SET NX PX``, ``INCR``, ``PTTL``). Once Redis's count reaches the limit, the instance that saw
the failure refuses the address until Redis's window ends. Checking a request stays a lookup
in memory: another instance refuses the address from the next failure it sees there, not
before (its requests are not sent to Redis).
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from genledger.limits.auth_failures import AuthFailures

log = logging.getLogger("genledger.limits")

_TIMEOUT_S = 0.25
PREFIX = "genledger:auth-failures:"


class SharedAuthFailures:
    """:class:`AuthFailures` whose failures also count in Redis at ``redis_url``."""

    def __init__(self, local: AuthFailures, redis_url: str, *, prefix: str = PREFIX) -> None:
        self.local = local
        self._redis = aioredis.Redis.from_url(
            redis_url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S
        )
        self._prefix = prefix
        self._down = False

    def retry_after(self, address: str) -> float | None:
        return self.local.retry_after(address)

    async def failed(self, address: str) -> None:
        if self.local.exempt(address):
            return
        self.local.count(address)
        key = self._prefix + address
        window_ms = max(1, int(self.local.window * 1000))
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, px=window_ms, nx=True)
                pipe.incr(key)
                pipe.pttl(key)
                _, count, ttl_ms = await pipe.execute()
        except (RedisError, OSError) as exc:
            if not self._down:
                log.warning("auth failures: Redis unreachable, counting per instance: %s", type(exc).__name__)
            self._down = True
            return
        self._down = False
        if count >= self.local.limit and ttl_ms > 0:
            self.local.block(address, ttl_ms / 1000)

    async def aclose(self) -> None:
        await self._redis.aclose()
