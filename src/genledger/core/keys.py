"""API keys as the gateway knows them: never the secret, only its hash."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from genledger.core.records import record

MAX_KEY_NAME = 200
"""Characters of a key's name (and label) at most, after surrounding spaces are stripped."""


def key_name(value: object) -> str:
    """``value`` as a key's name or label: a string, stripped, 1 to :data:`MAX_KEY_NAME`
    characters; ``ValueError`` saying so otherwise (the API, the dashboard and the CLI alike)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_NAME:
        raise ValueError(f"must be a non-empty string of at most {MAX_KEY_NAME} characters")
    return value.strip()


@record
class KeyRecord:
    """An API key as stored: never the secret, only its hash. Money in picodollars."""

    id: str
    hash: str
    name: str
    label: str
    is_management: bool
    disabled: bool
    limit_pico: int | None
    limit_reset: str | None
    usage_pico: int
    created_at: datetime
    updated_at: datetime | None = None
    reserved_pico: int = 0
    period_usage_pico: int = 0
    period_start: datetime | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    store_content: bool | None = None  # None: the gateway's content_storage.enabled decides
    expires_at: datetime | None = None
    include_byok_in_limit: bool = False  # OpenRouter's; no bring-your-own-key usage to count here

    def expired(self, now: datetime) -> bool:
        """Whether the key has ended by ``now`` (a key without ``expires_at`` never does)."""
        return self.expires_at is not None and self.expires_at <= now

    @property
    def limited_usage_pico(self) -> int:
        """The usage the limit applies to: this period's when the limit resets, else all of it."""
        return self.period_usage_pico if self.limit_reset else self.usage_pico


@record
class Hold:
    """Who holds a reservation of a key's credit, and until when without renewing it.

    ``id`` is the generation's id (its record settles the reservation); ``owner`` is the
    gateway instance serving the request, which renews the lease of everything it holds while
    it lives. A reservation whose lease ran out belongs to an instance that died: any
    instance gives it back to its key.
    """

    id: str
    owner: str
    expires_at: datetime


class KeyExists(ValueError):
    """A key with that name exists already."""


class Refusal(Enum):
    """Why a reservation was refused (``metadata.limit_source`` of the 402)."""

    KEY_LIMIT = "key_limit"
    IN_FLIGHT_BUDGET = "in_flight_budget"
