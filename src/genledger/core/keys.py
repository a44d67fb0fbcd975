"""API keys as the gateway knows them: never the secret, only its hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


@dataclass(frozen=True, slots=True)
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

    @property
    def limited_usage_pico(self) -> int:
        """The usage the limit applies to: this period's when the limit resets, else all of it."""
        return self.period_usage_pico if self.limit_reset else self.usage_pico


class KeyExists(ValueError):
    """A key with that name exists already."""


class Refusal(Enum):
    """Why a reservation was refused (``metadata.limit_source`` of the 402)."""

    KEY_LIMIT = "key_limit"
    IN_FLIGHT_BUDGET = "in_flight_budget"
