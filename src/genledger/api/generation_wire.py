"""The contract's generation object (``GET /generation``), from the one definition.

Every attribute of :class:`~genledger.core.generation.Generation` not in
``NOT_IN_CONTRACT`` appears under its contract name; money (``*_pico``) in USD, times in
ISO 8601; ``CONTRACT_CONSTANTS`` fill the keys genledger has no value for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

from genledger.core.adjustments import Adjustment
from genledger.core.content import Feedback
from genledger.core.generation import (
    CONTRACT_CONSTANTS,
    FIELDS,
    NOT_IN_CONTRACT,
    Generation,
    contract_name,
)
from genledger.core.money import to_usd
from genledger.core.notes import Notes

_SHOWN = tuple(
    (attribute, contract_name(attribute)) for attribute in FIELDS if attribute not in NOT_IN_CONTRACT
)
ITEM_KEYS: tuple[str, ...] = (*(name for _, name in _SHOWN), *CONTRACT_CONSTANTS)
"""The generation object's keys, in the order :func:`generation_json` gives them."""
USD_KEYS: dict[str, str] = {name: attribute for attribute, name in _SHOWN if attribute.endswith("_pico")}
"""The keys whose value is money (USD), each with the attribute holding it in picodollars."""


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


LEDGER_KEYS: tuple[str, ...] = ("price_version", "adjustments", "adjusted_usage", "feedback")
"""The list's and exports' extension keys after the contract's: the price version the
generation was rated with, its adjustment entries, its usage with them (USD), and the
feedback given on it."""

LISTED_KEYS: tuple[str, ...] = (*ITEM_KEYS, *LEDGER_KEYS)


def adjustment_json(adjustment: Adjustment) -> dict[str, Any]:
    return {
        "amount": to_usd(adjustment.amount_pico),
        "from_version": adjustment.from_version,
        "to_version": adjustment.to_version,
        "reason": adjustment.reason,
        "created_at": adjustment.created_at.isoformat(),
    }


def feedback_json(feedback: Feedback | None) -> dict[str, Any] | None:
    """The ``feedback`` extension: null when none was given."""
    if feedback is None:
        return None
    return {
        "category": feedback.category,
        "comment": feedback.comment,
        "created_at": feedback.created_at.isoformat(),
    }


def listed_json(
    generation: Generation, adjustments: Sequence[Adjustment] = (), feedback: Feedback | None = None
) -> dict[str, Any]:
    """A list (and export) item: the contract's object, then the ledger's extension keys."""
    data = generation_json(generation)
    data["price_version"] = generation.price_version
    data["adjustments"] = [adjustment_json(a) for a in adjustments]
    data["adjusted_usage"] = to_usd(generation.charge_pico + sum(a.amount_pico for a in adjustments))
    data["feedback"] = feedback_json(feedback)
    return data


def listed_items(generations: Sequence[Generation], notes: Notes) -> list[dict[str, Any]]:
    """The list items of ``generations``, with what ``notes`` keeps beside them."""
    return [listed_json(g, *notes.of(g.id)) for g in generations]
