"""Keys on the wire: ``/key``, ``/credits`` and the management API (``/keys``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from genledger.api.key_wire import MAX_PER_MINUTE
from genledger.api.schemas._base import Closed
from genledger.core.credits import LIMIT_RESETS
from genledger.core.keys import MAX_KEY_NAME
from genledger.core.money import MAX_LIMIT_USD

LimitReset = Literal[LIMIT_RESETS]  # type: ignore[valid-type]


class _LimitsAndUsage(Closed):
    label: str
    limit: float | None = Field(description="USD; null: no limit.")
    limit_remaining: float | None
    limit_reset: LimitReset | None
    include_byok_in_limit: bool
    usage: float
    usage_daily: float
    usage_weekly: float
    usage_monthly: float
    byok_usage: float
    is_management_key: bool
    expires_at: datetime | None
    reserved_in_flight: float = Field(description="USD held by requests in flight (an extension).")
    byok_usage_daily: float
    byok_usage_weekly: float
    byok_usage_monthly: float
    creator_user_id: None
    workspace_id: str


class Key(_LimitsAndUsage):
    """A key as the management API shows it: never its secret."""

    hash: str
    name: str
    disabled: bool
    external_user: None
    last_used_at: datetime | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    store_content: bool | None
    created_at: datetime
    updated_at: datetime | None


class Budget(Closed):
    scope: Literal["key_limit"]
    budget_id: None
    guardrail_id: None
    include_byok: bool
    limit_usd: float
    spend_usd: float
    remaining_usd: float
    reset_interval: LimitReset | None
    resets_at: datetime | None


class FreeModelRequests(Closed):
    limit: int
    remaining: int
    used: int


class RateLimit(Closed):
    requests: int
    interval: str
    tokens: int
    note: str


class CurrentKey(_LimitsAndUsage):
    """The calling key: its limits, usage and effective rate limits."""

    organization_id: None
    allowed_data_regions: list[str]
    budgets: list[Budget]
    effective_budget: Budget | None
    free_model_daily_requests: FreeModelRequests
    is_free_tier: bool
    is_provisioning_key: bool
    rate_limit: RateLimit


class CurrentKeyResponse(Closed):
    data: CurrentKey


class Credits(Closed):
    total_credits: float = Field(description="The key's limit in USD (0 without one).")
    total_usage: float


class CreditsResponse(Closed):
    data: Credits


class KeyResponse(Closed):
    data: Key


class KeyList(Closed):
    data: list[Key]


class CreatedKey(Closed):
    data: Key
    key: str = Field(description="The secret, shown this once.")


class Deleted(Closed):
    deleted: Literal[True]


_NAME_MAX = MAX_KEY_NAME


class KeyChanges(Closed):
    """Each field given is changed; a field left out keeps its value."""

    label: str = Field(default=None, min_length=1, max_length=_NAME_MAX)  # type: ignore[assignment]
    limit: float | None = Field(
        default=None, ge=0, le=float(MAX_LIMIT_USD), description="USD; null: no limit."
    )

    limit_reset: LimitReset | None = None
    requests_per_minute: int | None = Field(default=None, ge=0, le=MAX_PER_MINUTE)
    tokens_per_minute: int | None = Field(default=None, ge=0, le=MAX_PER_MINUTE)
    store_content: bool | None = Field(default=None, description="null: the gateway's default.")
    expires_at: datetime | None = Field(default=None, description="null: never.")
    include_byok_in_limit: bool | None = Field(
        default=None,
        description="OpenRouter's, kept and read back as set (null: false); genledger has no "
        "bring-your-own-key usage for it to count.",
    )


class KeyCreate(KeyChanges):
    name: str = Field(min_length=1, max_length=_NAME_MAX)
    management: bool = False


class KeyUpdate(KeyChanges):
    """At least one field."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    name: str = Field(default=None, min_length=1, max_length=_NAME_MAX)  # type: ignore[assignment]
    disabled: bool = Field(default=None)  # type: ignore[assignment]
