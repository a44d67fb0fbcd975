"""Price versions: every change of a model's prices is a new version with its effective time.

A generation records the version it was rated with (``Generation.price_version``), so a
corrected price never rewrites history: it becomes a new version, and ``reprice`` writes
adjustment entries for the difference (:mod:`genledger.core.adjustments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from genledger.core.pricing import Price
from genledger.core.records import record

_FIELDS = ("prompt", "completion", "cached_prompt", "cache_write", "reasoning")


@record
class PriceVersion:
    """Version ``version`` (1, 2, ...) of ``model``'s prices, in effect from ``effective_at``."""

    model: str
    version: int
    effective_at: datetime
    price: Price


def price_to_json(price: Price) -> dict[str, str | None]:
    """The prices as exact decimal strings (USD per million tokens), None where unset."""
    return {name: _text(getattr(price, name)) for name in _FIELDS}


def price_from_json(data: dict[str, Any]) -> Price:
    values = {name: Decimal(data[name]) if data.get(name) is not None else None for name in _FIELDS}
    prompt, completion = values.pop("prompt"), values.pop("completion")
    assert prompt is not None and completion is not None
    return Price(prompt=prompt, completion=completion, **values)


def same_price(a: Price, b: Price) -> bool:
    """Whether two prices charge alike (``1.50`` and ``1.5`` are the same price)."""
    return price_to_json(a) == price_to_json(b)


def current_version(history: Sequence[PriceVersion], model: str, price: Price, now: datetime) -> PriceVersion:
    """The version ``price`` is charged under: the latest if it charges alike, else the next one,
    effective ``now`` (not stored: ``PriceStore.sync`` stores it)."""
    latest = history[-1] if history else None
    if latest is not None and same_price(latest.price, price):
        return latest
    return PriceVersion(model, latest.version + 1 if latest else 1, now, price)


def _text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = f"{value.normalize():f}"
    return text
