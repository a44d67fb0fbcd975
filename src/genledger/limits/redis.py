"""Rate limits shared by several gateway instances: GCRA in one Lua script per request.

Redis's own clock (``TIME``) is the only clock, so instances need not agree on time. When
Redis cannot be reached the configured policy decides (``open``: allow, ``closed``: 429),
a warning is logged once per outage, and Redis is tried again after a short back-off.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from genledger.limits.ratelimit import ALLOW, Decision, RateLimits

log = logging.getLogger("genledger.limits")

RETRY_AFTER_OUTAGE_S = 1.0
_TIMEOUT_S = 0.25

# KEYS: requests state, tokens state. ARGV: requests per minute, tokens per minute, period (ms).
# Returns {allowed, reason (0 none, 1 requests, 2 tokens), limit, remaining, reset_ms, retry_after_ms}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rpm, tpm, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm > 0 then
  local interval = period / tpm
  local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or now), now)
  if tat - now + interval > period then
    return {0, 2, tpm, 0, math.ceil(tat), math.ceil(tat - period + interval - now)}
  end
end
if rpm <= 0 then return {1, 0, 0, 0, 0, 0} end
local interval = period / rpm
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local new_tat = tat + interval
if new_tat - now > period then
  return {0, 1, rpm, 0, math.ceil(tat), math.ceil(new_tat - period - now)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, 1, rpm, math.floor((period - (new_tat - now)) / interval), math.ceil(new_tat), 0}
"""

# KEYS: tokens state. ARGV: tokens per minute, tokens used, period (ms).
_DEBIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tpm, used, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now) + used * period / tpm
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
return 1
"""
_REASONS = {1: "requests", 2: "tokens"}
PERIOD_MS = 60_000


class RedisRateLimiter:
    def __init__(
        self,
        url: str,
        *,
        on_failure: Literal["open", "closed"] = "open",
        prefix: str = "genledger:rl",
        timeout_s: float = _TIMEOUT_S,
    ) -> None:
        # A short timeout: a Redis that does not answer must not hold requests up for long.
        self._redis: Any = aioredis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._debit = self._redis.register_script(_DEBIT)
        self._fail_open = on_failure == "open"
        self._prefix = prefix
        self._down_until = 0.0

    def _keys(self, key_id: str) -> tuple[str, str]:
        return f"{self._prefix}:{key_id}:requests", f"{self._prefix}:{key_id}:tokens"

    def _unavailable(self, exc: Exception | None) -> Decision:
        if exc is not None:
            if not self._down_until:
                log.warning(
                    "Redis unreachable, rate limits fail %s: %s", "open" if self._fail_open else "closed", exc
                )
            self._down_until = time.monotonic() + RETRY_AFTER_OUTAGE_S
        if self._fail_open:
            return ALLOW
        return Decision(False, retry_after_s=RETRY_AFTER_OUTAGE_S, reason="unavailable")

    def _up(self) -> None:
        if self._down_until:
            log.warning("Redis reachable again, rate limits enforced")
            self._down_until = 0.0

    async def acquire(self, key_id: str, limits: RateLimits) -> Decision:
        if self._down_until and time.monotonic() < self._down_until:
            return self._unavailable(None)
        try:
            allowed, reason, limit, remaining, reset_ms, retry_ms = await self._acquire(
                keys=self._keys(key_id),
                args=[limits.requests_per_minute, limits.tokens_per_minute, PERIOD_MS],
            )
        except (RedisError, OSError) as exc:
            return self._unavailable(exc)
        self._up()
        return Decision(
            allowed=bool(allowed),
            limit=int(limit),
            remaining=int(remaining),
            reset_ms=int(reset_ms),
            retry_after_s=int(retry_ms) / 1000,
            reason="" if allowed else _REASONS.get(int(reason), ""),
        )

    async def debit_tokens(self, key_id: str, limits: RateLimits, tokens: int) -> None:
        if not limits.tokens_per_minute or not tokens:
            return
        if self._down_until and time.monotonic() < self._down_until:
            return
        try:
            await self._debit(
                keys=[self._keys(key_id)[1]], args=[limits.tokens_per_minute, tokens, PERIOD_MS]
            )
        except (RedisError, OSError) as exc:
            self._unavailable(exc)

    async def aclose(self) -> None:
        await self._redis.aclose()
