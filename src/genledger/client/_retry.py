"""When to retry a request and how long to wait first: one pure policy for sync and async.

The policy does no I/O and never sleeps; the clients ask it for a decision and a delay, then
sleep with their own (injectable) sleep function.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Final

import httpx

__all__ = ["RETRYABLE_STATUS_CODES", "RetryPolicy"]

RETRYABLE_STATUS_CODES: Final = frozenset({408, 429, 500, 502, 503, 504, 524, 529})
"""Statuses worth another attempt. 400, 401, 402, 403 and 404 are deliberately absent."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Decides whether a failed attempt is retried and how long to wait before the next one.

    Connection errors and timeouts are always retryable; responses are retryable when their
    status is in ``retry_status_codes``. Every call is bounded by ``max_retries`` retries
    (passed per decision, so per-call overrides need no new policy).

    The wait is the server's ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)
    when present, capped at ``max_retry_after``; otherwise exponential backoff,
    ``initial_delay * 2**retries_taken`` capped at ``max_delay``, reduced by up to ``jitter``
    (a fraction) at random so that clients do not retry in lockstep.

    ``rand`` (uniform in [0, 1)) and ``clock`` (POSIX seconds, for HTTP dates) are injectable
    so that delays are deterministic in tests.
    """

    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    retry_status_codes: frozenset[int] = RETRYABLE_STATUS_CODES
    rand: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def should_retry(self, *, retries_taken: int, max_retries: int, status_code: int | None = None) -> bool:
        """Whether to try again after ``retries_taken`` retries have already been made.

        ``status_code`` is the failed response's status, or ``None`` for a connection error or
        timeout (no response at all).
        """
        if retries_taken >= max_retries:
            return False
        return status_code is None or status_code in self.retry_status_codes

    def delay(self, *, retries_taken: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait before retry number ``retries_taken + 1``.

        ``headers`` are the failed response's headers (``None`` when there was no response).
        """
        server_delay = self.retry_after(headers) if headers is not None else None
        if server_delay is not None:
            return min(server_delay, self.max_retry_after)
        return self.backoff(retries_taken)

    def backoff(self, retries_taken: int) -> float:
        """The jittered exponential delay, ignoring any server hint."""
        base = min(self.initial_delay * 2.0**retries_taken, self.max_delay)
        return base * (1.0 - self.jitter * self.rand())

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        """The server's requested wait in seconds (uncapped, never negative), or ``None``.

        ``retry-after-ms`` (milliseconds) wins over ``Retry-After`` (delta-seconds or an HTTP
        date). Unparseable values are ignored.
        """
        headers = httpx.Headers(headers)
        milliseconds = _parse_float(headers.get("retry-after-ms"))
        if milliseconds is not None:
            return max(milliseconds / 1000.0, 0.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        seconds = _parse_float(value)
        if seconds is not None:
            return max(seconds, 0.0)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000" parses as naive; HTTP dates are always GMT.
            when = when.replace(tzinfo=UTC)
        return max(when.timestamp() - self.clock(), 0.0)


def _parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    # float() accepts "nan" and "inf"; neither is a usable delay.
    return number if math.isfinite(number) else None
