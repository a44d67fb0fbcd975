"""Typed, immutable models of what the Generations API returns.

Every model is frozen and keeps keys it does not know (``extra="allow"``): a newer server may
add fields, and they stay readable as attributes and in ``model_extra`` instead of being
dropped or failing validation. Costs are US dollars as JSON numbers (``float``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Credits",
    "ErrorDetail",
    "ErrorEnvelope",
    "Generation",
    "KeyInfo",
    "ProviderResponse",
    "RateLimit",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", protected_namespaces=())


class ProviderResponse(_Model):
    """One attempt at one upstream provider while serving a generation."""

    status: int | None
    """HTTP status the provider answered with (``None`` when it never answered)."""
    provider_name: str | None = None
    id: str | None = None
    latency: float | None = None
    is_byok: bool | None = None
    endpoint_id: str | None = None
    model_permaslug: str | None = None


class Generation(_Model):
    """Request and usage metadata of one generation (``GET /generation`` → ``data``).

    Every key of the contract must be present in the response; keys documented as nullable
    may be ``None``. ``request_id``, ``session_id`` and ``response_cache_source_id`` may also be
    absent, and then read as ``None``.
    """

    id: str
    upstream_id: str | None
    total_cost: float
    cache_discount: float | None
    upstream_inference_cost: float | None
    created_at: str
    """ISO 8601 with offset, e.g. ``2024-07-15T23:33:19.433273+00:00``, as the server sent it."""
    model: str
    app_id: int | None
    streamed: bool | None
    cancelled: bool | None
    provider_name: str | None
    latency: float | None
    moderation_latency: float | None
    generation_time: float | None
    finish_reason: str | None
    tokens_prompt: int | None
    tokens_completion: int | None
    native_tokens_prompt: int | None
    native_tokens_completion: int | None
    native_tokens_completion_images: int | None
    native_tokens_reasoning: int | None
    native_tokens_cached: int | None
    num_media_prompt: int | None
    num_input_audio_prompt: int | None
    num_media_completion: int | None
    num_search_results: int | None
    origin: str
    usage: float
    is_byok: bool
    native_finish_reason: str | None
    external_user: str | None
    api_type: str | None
    """``completions``, ``embeddings``, ... kept as a plain string so new values never fail."""
    router: str | None
    data_region: str
    http_referer: str | None
    user_agent: str | None
    preset_id: str | None
    service_tier: str | None
    web_search_engine: str | None
    workspace_id: str | None
    num_fetches: int | None
    provider_responses: tuple[ProviderResponse, ...] | None
    request_id: str | None = None
    session_id: str | None = None
    response_cache_source_id: str | None = None
    # genledger's extensions (absent from OpenRouter's answers): the app's X-Title and the
    # request's metadata.
    app_title: str | None = None
    metadata: dict[str, str] | None = None


class RateLimit(_Model):
    """The legacy per-key rate limit block of ``GET /key`` (OpenRouter reports ``-1``)."""

    requests: int
    interval: str
    note: str | None = None


class KeyInfo(_Model):
    """Limits and usage of the API key making the request (``GET /key`` → ``data``).

    Amounts are US dollars. ``limit`` is ``None`` for a key without a spending limit.
    ``rate_limit`` is a legacy block; it reads as ``None`` when the server omits it.
    """

    label: str
    limit: float | None
    limit_remaining: float | None
    limit_reset: str | None
    usage: float
    usage_daily: float
    usage_weekly: float
    usage_monthly: float
    is_free_tier: bool
    rate_limit: RateLimit | None = None


class Credits(_Model):
    """Credits bought and used by the key's owner (``GET /credits`` → ``data``), in US dollars."""

    total_credits: float
    total_usage: float


class ErrorDetail(_Model):
    """The ``error`` object of the error envelope: ``code`` equals the HTTP status."""

    code: int
    message: str
    metadata: dict[str, Any] | None = None


class ErrorEnvelope(_Model):
    """A whole error body: ``{"error": {...}, "user_id"?: ..., "openrouter_metadata"?: ...}``."""

    error: ErrorDetail
    user_id: str | None = None
    openrouter_metadata: dict[str, Any] | None = None
