"""Typed, immutable models of what the Generations API returns.

Every model is frozen and keeps keys it does not know (``extra="allow"``): a newer server may
add fields, and they stay readable as attributes and in ``model_extra`` instead of being
dropped or failing validation. Costs are US dollars as JSON numbers (``float``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ActivityItem",
    "ActivityList",
    "Credits",
    "ErrorDetail",
    "ErrorEnvelope",
    "Generation",
    "GenerationList",
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


class GenerationList(_Model):
    """A whole ``GET /generations`` body: one page, newest first, and the next page's cursor."""

    data: tuple[Generation, ...]
    next_cursor: str | None = None
    """Opaque; ``None`` (or absent) on the last page."""


class ActivityItem(_Model):
    """One row of ``GET /activity`` → ``data``: the totals of one group of generations.

    The keys are OpenRouter's; amounts are US dollars. Without ``group_by`` a row is a UTC day's
    totals for one endpoint, and ``date``, ``model``, ``model_permaslug``, ``endpoint_id`` and
    ``provider_name`` say which. With ``group_by`` a row carries only the keys of its group
    (``date`` for ``day``, ``hour``, ``model``, ``provider_name`` for ``provider``,
    ``api_key_hash`` for ``key``, ``external_user`` for ``user``, ``session_id`` for
    ``session``; ``None`` when not grouped by, or when its generations had none), and
    ``metadata.<key>`` columns are read with :attr:`metadata_groups`.
    """

    usage: float
    """Total cost in US dollars."""
    byok_usage_inference: float
    """Inference cost paid with the user's own provider keys (BYOK), in US dollars."""
    requests: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    # genledger's extension (absent from OpenRouter's answers).
    cached_tokens: int | None = None
    # The endpoint and day of a row without group_by; grouping keys with it.
    date: str | None = None
    """The UTC day, ``YYYY-MM-DD``."""
    model: str | None = None
    model_permaslug: str | None = None
    endpoint_id: str | None = None
    provider_name: str | None = None
    hour: str | None = None
    """The UTC hour, ``YYYY-MM-DDTHH:00:00Z``."""
    api_key_hash: str | None = None
    external_user: str | None = None
    session_id: str | None = None
    workspace_id: str | None = None
    """With OpenRouter's ``group_by="workspace"``: genledger has one, ``"default"``."""

    @property
    def metadata_groups(self) -> dict[str, str | None]:
        """The ``metadata.<key>`` grouping columns, by key (``{"team": "a"}`` for ``metadata.team``)."""
        prefix = "metadata."
        extra = self.model_extra or {}
        return {name[len(prefix) :]: value for name, value in extra.items() if name.startswith(prefix)}


class ActivityList(_Model):
    """A whole ``GET /activity`` body."""

    data: tuple[ActivityItem, ...]


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
