"""The contract's generation object (``GET /generation``), from the one definition.

Every attribute of :class:`~genledger.core.generation.Generation` not in
``NOT_IN_CONTRACT`` appears under its contract name; money (``*_pico``) in USD, times in
ISO 8601; ``CONTRACT_CONSTANTS`` fill the keys genledger has no value for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

from genledger.core.adjustments import Adjustment
from genledger.core.generation import (
    CONTRACT_CONSTANTS,
    FIELDS,
    NOT_IN_CONTRACT,
    Generation,
    contract_name,
)
from genledger.core.money import to_usd

_SHOWN = tuple(
    (attribute, contract_name(attribute)) for attribute in FIELDS if attribute not in NOT_IN_CONTRACT
)
ITEM_KEYS: tuple[str, ...] = (*(name for _, name in _SHOWN), *CONTRACT_CONSTANTS)
"""The generation object's keys, in the order :func:`generation_json` gives them."""


def _attempts(value: Any) -> list[dict[str, Any]]:
    return [attempt.to_json() for attempt in value]


def _converter(attribute: str) -> Callable[[Any], Any] | None:
    if attribute.endswith("_pico"):
        return to_usd
    if attribute == "created_at":
        return datetime.isoformat
    if attribute == "provider_responses":
        return _attempts
    return None


# Read in one call, and the few values that need it converted (decided once: a list page
# renders a hundred records).
_NAMES = tuple(name for _, name in _SHOWN)
_READ = attrgetter(*(attribute for attribute, _ in _SHOWN))
_CONVERTED = tuple(
    (name, convert) for attribute, name in _SHOWN if (convert := _converter(attribute)) is not None
)


def generation_json(generation: Generation) -> dict[str, Any]:
    """The contract's generation object: every key present, nulls where unknown."""
    data = dict(zip(_NAMES, _READ(generation), strict=True))
    for name, convert in _CONVERTED:
        value = data[name]
        if value is not None:
            data[name] = convert(value)
    data.update(CONTRACT_CONSTANTS)
    return data


LEDGER_KEYS: tuple[str, ...] = ("price_version", "adjustments", "adjusted_usage")
"""The list's and exports' extension keys after the contract's: the price version the
generation was rated with, its adjustment entries, and its usage with them (USD)."""

LISTED_KEYS: tuple[str, ...] = (*ITEM_KEYS, *LEDGER_KEYS)

Adjusted = Mapping[str, Sequence[Adjustment]]
"""Each generation's adjustments by generation id (absent: none)."""


def adjustment_json(adjustment: Adjustment) -> dict[str, Any]:
    return {
        "amount": to_usd(adjustment.amount_pico),
        "from_version": adjustment.from_version,
        "to_version": adjustment.to_version,
        "reason": adjustment.reason,
        "created_at": adjustment.created_at.isoformat(),
    }


def listed_json(generation: Generation, adjustments: Sequence[Adjustment] = ()) -> dict[str, Any]:
    """A list item: the contract's object, then the ledger's extension keys."""
    data = generation_json(generation)
    data["price_version"] = generation.price_version
    data["adjustments"] = [adjustment_json(a) for a in adjustments]
    data["adjusted_usage"] = to_usd(generation.charge_pico + sum(a.amount_pico for a in adjustments))
    return data
