"""Price versions: every change of a model's prices is a new version with its effective time.

A generation records the version it was rated with (``Generation.price_version``), so a
corrected price never rewrites history: it becomes a new version, and ``reprice`` writes
adjustment entries for the difference (:mod:`genledger.core.adjustments`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import datetime
from decimal import Decimal
from typing import Any

from genledger.core.pricing import Price
from genledger.core.records import record

_FIELDS = ("prompt", "completion", "cached_prompt", "cache_write", "reasoning")


@record
class PriceVersion:
    """Version ``version`` (1, 2, ...) of ``model``'s prices, in effect from ``effective_at``.

    ``endpoints``: the prices of the fallback endpoints that charge otherwise than the model,
    by the provider name a generation they serve records; part of the version, so changing
    one makes a new version, and a generation is rated (and re-rated) at the price of what
    served it.
    """

    model: str
    version: int
    effective_at: datetime
    price: Price
    endpoints: dict[str, Price] = field(default_factory=dict)

    def price_for(self, provider_name: str | None) -> Price:
        """What a generation served by ``provider_name`` is charged at under this version."""
        if provider_name is None:
            return self.price
        return self.endpoints.get(provider_name, self.price)


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


def prices_to_json(price: Price, endpoints: Mapping[str, Price]) -> dict[str, Any]:
    """A version's prices as stored: the model's, and its endpoints' under ``endpoints`` (left
    out when none charges otherwise, as versions made before endpoints were versioned)."""
    stored: dict[str, Any] = dict(price_to_json(price))
    if endpoints:
        stored["endpoints"] = {name: price_to_json(endpoints[name]) for name in sorted(endpoints)}
    return stored


def prices_from_json(data: dict[str, Any]) -> tuple[Price, dict[str, Price]]:
    endpoints = data.get("endpoints") or {}
    return price_from_json(data), {name: price_from_json(value) for name, value in endpoints.items()}


def current_version(
    history: Sequence[PriceVersion],
    model: str,
    price: Price,
    now: datetime,
    endpoints: Mapping[str, Price] | None = None,
) -> PriceVersion:
    """The version ``price`` (and ``endpoints``' prices) are charged under: the latest if they
    charge alike, else the next one, effective ``now`` (not stored: ``PriceStore.sync`` stores it)."""
    endpoints = dict(endpoints or {})
    latest = history[-1] if history else None
    if latest is not None and prices_to_json(latest.price, latest.endpoints) == prices_to_json(
        price, endpoints
    ):
        return latest
    return PriceVersion(model, latest.version + 1 if latest else 1, now, price, endpoints)


def _text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = f"{value.normalize():f}"
    return text
