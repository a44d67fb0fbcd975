"""The rate limiter interface and the in-process backend."""

from __future__ import annotations

import math
import time
from typing import Protocol

from genledger.core.records import record
from genledger.limits import gcra


@record
class RateLimits:
    """A key's limits per minute; 0 means unlimited."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0

    @property
    def unlimited(self) -> bool:
        return not self.requests_per_minute and not self.tokens_per_minute


@record
class Decision:
    """Whether a request may go ahead, and the ``X-RateLimit-*`` figures for the caller."""

    allowed: bool
    limit: int = 0
    remaining: int = 0
    reset_ms: int = 0
    retry_after_s: float = 0.0
    reason: str = ""  # "requests", "tokens" or "unavailable"


ALLOW = Decision(True)


class RateLimiter(Protocol):
    async def acquire(self, key_id: str, limits: RateLimits) -> Decision:
        """Count one request against the key's limits, or refuse it."""
        ...

    async def debit_tokens(self, key_id: str, limits: RateLimits, tokens: int) -> None:
        """Charge the tokens a finished request used against tokens per minute."""
        ...

    async def aclose(self) -> None: ...


def decision(outcome: gcra.Outcome, limit: int, reason: str) -> Decision:
    return Decision(
        allowed=outcome.allowed,
        limit=limit,
        remaining=outcome.remaining,
        reset_ms=math.ceil(outcome.reset_ms),
        retry_after_s=outcome.retry_after_ms / 1000,
        reason="" if outcome.allowed else reason,
    )


class MemoryRateLimiter:
    """Limits held in this process: right for a single gateway instance."""

    def __init__(self) -> None:
        self._requests: dict[str, float] = {}
        self._tokens: dict[str, float] = {}

    async def acquire(self, key_id: str, limits: RateLimits) -> Decision:
        now = time.time() * 1000
        if limits.tokens_per_minute:
            tokens = gcra.exhausted(self._tokens.get(key_id), now, limits.tokens_per_minute)
            if not tokens.allowed:
                return decision(tokens, limits.tokens_per_minute, "tokens")
        if not limits.requests_per_minute:
            return ALLOW
        outcome = gcra.take(self._requests.get(key_id), now, limits.requests_per_minute)
        if outcome.allowed:
            self._requests[key_id] = outcome.tat
        return decision(outcome, limits.requests_per_minute, "requests")

    async def debit_tokens(self, key_id: str, limits: RateLimits, tokens: int) -> None:
        if limits.tokens_per_minute and tokens:
            now = time.time() * 1000
            self._tokens[key_id] = gcra.debit(self._tokens.get(key_id), now, limits.tokens_per_minute, tokens)

    async def aclose(self) -> None:
        return None
