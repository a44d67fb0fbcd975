"""Before the upstream is called: rate limits, then a reservation of the key's credit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from genledger.config import LimitsConfig
from genledger.core import pricing
from genledger.core.chat import ChatRequest
from genledger.core.credits import (
    Bounded,
    max_output_tokens,
    output_tokens_bound,
    period_start,
    prompt_bound,
    reservation,
)
from genledger.core.keys import KeyRecord, Refusal
from genledger.core.money import MAX_LIMIT_USD, PICO_PER_USD, to_decimal, to_usd
from genledger.core.pricing import Price
from genledger.core.stores import KeyStore
from genledger.errors import Forbidden, PaymentRequired, TooManyRequests
from genledger.gateway.leases import Leases
from genledger.limits import Decision, RateLimiter, RateLimits

IN_FLIGHT_RETRY_AFTER_S = 1
_MAX_HOLD = int(MAX_LIMIT_USD) * PICO_PER_USD + 1  # more than any key's limit


class Priced(Protocol):
    """A way to serve a request, as a reservation sees it (a model entry or one endpoint)."""

    @property
    def price(self) -> Price: ...
    @property
    def max_output_tokens(self) -> int | None: ...


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    headers = {"Retry-After": str(max(1, math.ceil(decision.retry_after_s)))}
    if decision.limit:
        headers["X-RateLimit-Limit"] = str(decision.limit)
        headers["X-RateLimit-Remaining"] = str(decision.remaining)
        headers["X-RateLimit-Reset"] = str(decision.reset_ms)
    return headers


class Admission:
    """Admits a request for a key, or refuses it with 403, 429 or 402 before any upstream call."""

    def __init__(
        self, keys: KeyStore, limiter: RateLimiter, config: LimitsConfig, leases: Leases | None = None
    ) -> None:
        self._keys = keys
        self._limiter = limiter
        self._config = config
        self.leases = leases if leases is not None else Leases(keys, config.reservation_lease)

    def limits_for(self, key: KeyRecord) -> RateLimits:
        return RateLimits(
            requests_per_minute=key.requests_per_minute
            if key.requests_per_minute is not None
            else self._config.requests_per_minute,
            tokens_per_minute=key.tokens_per_minute
            if key.tokens_per_minute is not None
            else self._config.tokens_per_minute,
        )

    def output_bound(self, request: ChatRequest | Bounded, entry: Priced) -> int:
        """The most completion tokens ``request`` can produce on ``entry``, all choices together."""
        return output_tokens_bound(request, entry.max_output_tokens, self._config.default_max_output_tokens)

    async def admit(
        self, key: KeyRecord, request: ChatRequest | Bounded, entries: Sequence[Priced], *, hold_id: str
    ) -> int:
        """Picodollars reserved for the request (0 for a key without a limit), held as ``hold_id``.

        With fallback models or endpoints the reservation covers the dearest of them. The
        reservation is this instance's, under a lease it renews while it lives (``leases.py``).
        """
        if key.is_management:
            raise Forbidden("Management keys cannot make completions; use an ordinary key")
        limits = self.limits_for(key)
        if not limits.unlimited:
            decision = await self._limiter.acquire(key.id, limits)
            if not decision.allowed:
                raise _too_many(decision)
        if key.limit_pico is None:
            return 0
        default_max = self._config.default_max_output_tokens
        images = self._config.image_prompt_tokens
        amount = max(
            reservation(request, e.price, e.max_output_tokens, default_max, image_tokens=images)
            for e in entries
        )
        # Beyond the largest limit, a worst case is refused alike; held as it is, n=128 choices of
        # 10M tokens at the dearest price would overflow the ledger's 64-bit sums.
        held = min(amount, _MAX_HOLD)
        refusal = await self._keys.reserve(
            key.id, held, period_start(key.limit_reset, datetime.now(UTC)), self.leases.hold(hold_id)
        )
        if refusal is None:
            return held
        fresh = await self._keys.find_by_id(key.id) or key
        raise self._refused(fresh, refusal, request, entries, amount)

    def _refused(
        self,
        key: KeyRecord,
        refusal: Refusal,
        request: ChatRequest | Bounded,
        entries: Sequence[Priced],
        amount: int,
    ) -> PaymentRequired:
        """A 402 that says what the limit, the usage, the reservations and the request's worst
        case are, and which ``max_tokens`` would fit now (0: none, the prompt alone is too dear)."""
        limit = key.limit_pico or 0
        now = datetime.now(UTC)
        current = period_start(key.limit_reset, now)
        used = (
            0
            if current is not None and (key.period_start is None or key.period_start < current)
            else (key.limited_usage_pico)
        )
        reserved = key.reserved_pico
        available = max(limit - used - reserved, 0)
        prompt = prompt_bound(request, image_tokens=self._config.image_prompt_tokens)
        default_max = self._config.default_max_output_tokens
        asked = max(max_output_tokens(request, e.max_output_tokens, default_max) for e in entries)
        choices = request.choices()
        # Every choice may run to max_tokens: what fits is shared between them.
        output = min(pricing.max_output_within(prompt, available, e.price) for e in entries)
        fits = output // choices
        if fits > 0:
            remedy = f"Lower max_tokens to {fits} or less to fit, or raise the limit."
        elif output > 0:
            remedy = f"Ask for fewer choices than n={choices}, or raise the limit."
        elif refusal is Refusal.IN_FLIGHT_BUDGET:
            remedy = "No max_tokens fits while they run: retry when they finish, or raise the limit."
        else:
            remedy = "Even the prompt alone may cost more: shorten it or raise the limit."
        each = f" for each of {choices} choices" if choices > 1 else ""
        in_flight = refusal is Refusal.IN_FLIGHT_BUDGET
        cause = "The key's credit is held by requests in flight" if in_flight else "Key limit exceeded"
        message = (
            f"{cause}: this request may cost up to {_dollars(amount)} (a prompt of up to "
            f"{prompt} tokens and max_tokens {asked}{each}); the key's limit is {_dollars(limit)}, "
            f"of which {_dollars(used)} is used and {_dollars(reserved)} reserved by requests in "
            f"flight, leaving {_dollars(available)}. {remedy}"
        )
        metadata = {
            "limit_source": refusal.value,
            "max_cost": to_usd(amount),
            "limit": to_usd(limit),
            "usage": to_usd(used),
            "reserved": to_usd(reserved),
            "available": to_usd(available),
            "prompt_tokens_bound": prompt,
            "max_tokens": asked,
            "max_tokens_that_fit": fits,
        }
        headers = {"Retry-After": str(IN_FLIGHT_RETRY_AFTER_S)} if in_flight else None
        return PaymentRequired(message, metadata=metadata, headers=headers)

    async def release(self, hold_id: str, reserved: int) -> None:
        """Give back the reservation ``hold_id`` (of ``reserved`` picodollars; none when 0)."""
        if reserved:
            await self._keys.release(hold_id)

    async def used_tokens(self, key: KeyRecord, tokens: int) -> None:
        limits = self.limits_for(key)
        if limits.tokens_per_minute:
            await self._limiter.debit_tokens(key.id, limits, tokens)


def _dollars(pico: int) -> str:
    return f"${to_decimal(pico).normalize():f}"


def _too_many(decision: Decision) -> TooManyRequests:
    if decision.reason == "unavailable":
        message = "Rate limiting is unavailable and this gateway refuses requests until it is back"
    else:
        message = f"Rate limit exceeded: {decision.limit} {decision.reason} per minute"
    return TooManyRequests(
        message, metadata={"limit_source": decision.reason}, headers=rate_limit_headers(decision)
    )
