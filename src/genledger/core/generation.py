"""The ledger's record of one generation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ProviderAttempt:
    """One call to one provider endpoint while serving a generation."""

    status: int
    provider_name: str | None = None
    latency_ms: float | None = None
    upstream_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "provider_name": self.provider_name,
            "latency": self.latency_ms,
            "id": self.upstream_id,
            "is_byok": False,
        }


@dataclass(frozen=True, slots=True)
class Generation:
    """Everything genledger keeps about one generation.

    Money is in picodollars. Token fields are ``None`` when the provider did not report
    them. ``key_id`` owns the record: only that key may read it.
    """

    id: str
    key_id: str
    created_at: datetime
    model: str
    api_type: str = "completions"
    upstream_id: str | None = None
    provider_name: str | None = None
    total_cost: int = 0
    cache_discount: int | None = None
    usage: int = 0
    streamed: bool | None = None
    cancelled: bool | None = None
    latency_ms: float | None = None
    generation_time_ms: float | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    tokens_prompt: int | None = None
    tokens_completion: int | None = None
    native_tokens_prompt: int | None = None
    native_tokens_completion: int | None = None
    native_tokens_reasoning: int | None = None
    native_tokens_cached: int | None = None
    native_tokens_cache_write: int | None = None
    native_tokens_completion_images: int | None = None
    num_media_prompt: int | None = None
    origin: str = ""
    http_referer: str | None = None
    user_agent: str | None = None
    external_user: str | None = None
    app_title: str | None = None
    router: str | None = None
    data_region: str = "global"
    request_id: str | None = None
    provider_responses: tuple[ProviderAttempt, ...] = field(default_factory=tuple)
