"""The ledger's record of one generation: one definition, and the names it goes by.

:class:`Generation` is the definition. The ledger's row and the contract's JSON
(``GET /generation``, pinned by ``shared/reference/generation-api.md``) follow from it and
two small rename tables; a test pins the row to the table, the JSON to the reference and
the client's model to the JSON.

* Money is integer picodollars, in attributes named ``*_pico`` (shown in USD).
* Token counts are named ``tokens_*`` / ``native_tokens_*``; ``None`` when the provider
  reported none. A stream cut short before its provider reported usage has estimated
  ``tokens_*`` (:mod:`genledger.core.estimates`) and no native completion counts.
* ``*_ms`` are milliseconds (the contract's ``latency`` and ``generation_time``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from datetime import datetime
from typing import Any, TypedDict

from genledger.core.records import record
from genledger.core.usage import Usage

# The longest text of the attributes a caller or an upstream chooses: the ledger's column
# lengths (ledger/schema.py; a test pins them). PostgreSQL refuses a longer value, and with it
# the whole record, after the upstream did the work: a caller's is refused with a 400 before
# (api/), an upstream's is cut to fit (gateway/completions.py).
MAX_EXTERNAL_USER = 1000
MAX_APP_TITLE = 1000
MAX_HTTP_REFERER = 2000
MAX_USER_AGENT = 1000
MAX_UPSTREAM_ID = 200
MAX_NATIVE_FINISH_REASON = 64


@record
class ProviderAttempt:
    """One call to one provider endpoint while serving a generation."""

    status: int
    provider_name: str | None = None
    latency_ms: float | None = None
    upstream_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As stored, and as the contract's ``provider_responses`` items show it."""
        return {
            "status": self.status,
            "provider_name": self.provider_name,
            "latency": self.latency_ms,
            "id": self.upstream_id,
            "is_byok": False,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ProviderAttempt:
        return cls(
            status=item["status"],
            provider_name=item.get("provider_name"),
            latency_ms=item.get("latency"),
            upstream_id=item.get("id"),
        )


@record
class Generation:
    """Everything genledger keeps about one generation.

    ``key_id`` owns the record: only that key may read it. ``charge_pico`` is what was
    charged to the key's credit; ``total_cost_pico`` what the generation cost (equal today);
    both stay as recorded, corrections are adjustment entries (:mod:`genledger.core.adjustments`).
    ``price_version`` is the version of the model's prices it was rated with;
    ``upstream_cost_pico`` what the upstream said it charged (its ``usage.cost``), if it did.
    """

    id: str
    key_id: str
    created_at: datetime
    model: str
    api_type: str = "completions"
    upstream_id: str | None = None
    provider_name: str | None = None
    total_cost_pico: int = 0
    cache_discount_pico: int | None = None
    charge_pico: int = 0
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
    session_id: str | None = None
    metadata: dict[str, str] | None = None
    price_version: int | None = None
    upstream_cost_pico: int | None = None

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens (0 when unknown)."""
        return (self.tokens_prompt or 0) + (self.tokens_completion or 0)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Generation))

COLUMN_NAMES: dict[str, str] = {"charge_pico": "usage_pico"}
"""Attributes whose ledger column is named otherwise (every other column is the attribute)."""

CONTRACT_NAMES: dict[str, str] = {
    "total_cost_pico": "total_cost",
    "cache_discount_pico": "cache_discount",
    "charge_pico": "usage",
    "latency_ms": "latency",
    "generation_time_ms": "generation_time",
    "upstream_cost_pico": "upstream_inference_cost",
}
"""Attributes the contract's JSON names otherwise."""

NOT_IN_CONTRACT = frozenset({"key_id", "native_tokens_cache_write", "price_version"})
"""Attributes ``/generation`` does not show: kept in the ledger (the list API shows
``price_version`` among its extension fields, beside the adjustments)."""

EXTENSIONS = frozenset({"app_title", "metadata"})
"""Attributes the contract has no key for that genledger shows beside it, under their own names
(clients ignore keys they do not know): the app's ``X-Title`` and the request's ``metadata``."""

CONTRACT_CONSTANTS: dict[str, Any] = {
    "app_id": None,
    "moderation_latency": None,
    "num_input_audio_prompt": None,
    "num_media_completion": None,
    "num_search_results": None,
    "is_byok": False,
    "preset_id": None,
    "service_tier": None,
    "web_search_engine": None,
    "workspace_id": None,
    "num_fetches": None,
    "response_cache_source_id": None,
}
"""Contract keys genledger has no value of its own for: the same for every generation."""


def column_name(attribute: str) -> str:
    return COLUMN_NAMES.get(attribute, attribute)


def contract_name(attribute: str) -> str:
    return CONTRACT_NAMES.get(attribute, attribute)


class TokenCounts(TypedDict):
    tokens_prompt: int | None
    tokens_completion: int | None
    native_tokens_prompt: int | None
    native_tokens_completion: int | None
    native_tokens_reasoning: int | None
    native_tokens_cached: int | None
    native_tokens_cache_write: int | None
    native_tokens_completion_images: int | None


def token_counts(usage: Usage | None) -> TokenCounts:
    """A generation's token attributes for what the provider reported (``None``: nothing)."""
    if usage is None:
        return TokenCounts(
            tokens_prompt=None,
            tokens_completion=None,
            native_tokens_prompt=None,
            native_tokens_completion=None,
            native_tokens_reasoning=None,
            native_tokens_cached=None,
            native_tokens_cache_write=None,
            native_tokens_completion_images=None,
        )
    return {
        "tokens_prompt": usage.prompt_tokens,
        "tokens_completion": usage.completion_tokens,
        "native_tokens_prompt": usage.prompt_tokens,
        "native_tokens_completion": usage.completion_tokens,
        "native_tokens_reasoning": usage.reasoning_tokens,
        "native_tokens_cached": usage.cached_tokens,
        "native_tokens_cache_write": usage.cache_write_tokens,
        "native_tokens_completion_images": usage.completion_image_tokens,
    }


def filled_counts(usage: Usage, reported: Usage) -> TokenCounts:
    """The token attributes of a report that missed a count: ``usage`` holds the reported
    counts and the estimates of the missing (:func:`~genledger.core.estimates.filled`),
    whose native counts are unknown."""
    counts = token_counts(usage)
    if not reported.prompt_tokens:
        counts["native_tokens_prompt"] = None
    if usage.completion_tokens != reported.completion_tokens:
        counts["native_tokens_completion"] = None
    return counts


def estimated_counts(usage: Usage, reported: Usage | None) -> TokenCounts:
    """The token attributes of a stream cut short: ``usage`` holds the estimates, the native
    counts only what the provider reported of the prompt (of the completion it tells at the end)."""
    prompt = reported if reported is not None and reported.prompt_tokens > 0 else None
    return {
        "tokens_prompt": usage.prompt_tokens,
        "tokens_completion": usage.completion_tokens,
        "native_tokens_prompt": prompt.prompt_tokens if prompt else None,
        "native_tokens_completion": None,
        "native_tokens_reasoning": None,
        "native_tokens_cached": prompt.cached_tokens if prompt else None,
        "native_tokens_cache_write": prompt.cache_write_tokens if prompt else None,
        "native_tokens_completion_images": None,
    }
