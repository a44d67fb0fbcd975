"""Small shared types and the client's named defaults."""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import httpx

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "NOT_GIVEN",
    "NotGiven",
    "TimeoutTypes",
]

API_KEY_ENV: Final = "GENLEDGER_API_KEY"
"""Environment variable read when no ``api_key`` is passed."""

BASE_URL_ENV: Final = "GENLEDGER_BASE_URL"
"""Environment variable read when no ``base_url`` is passed."""

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8080/api/v1"
"""Where a local genledger server listens by default."""

DEFAULT_TIMEOUT: Final = httpx.Timeout(60.0, connect=5.0)
"""Per-request timeout used unless the caller or an injected ``http_client`` sets one."""

DEFAULT_MAX_RETRIES: Final = 2
"""Retries after the first attempt, for retryable failures only."""

TimeoutTypes: TypeAlias = float | httpx.Timeout | None
"""A timeout in seconds, an ``httpx.Timeout``, or ``None`` for no timeout at all."""


class NotGiven:
    """The type of :data:`NOT_GIVEN`: "argument omitted", as distinct from an explicit ``None``.

    ``timeout=None`` means "no timeout"; ``timeout=NOT_GIVEN`` (the default) means "use the
    client's setting".
    """

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()
"""Sentinel for an omitted per-call option."""
