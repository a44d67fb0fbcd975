"""The contract's generation object (``GET /generation``), from the one definition.

Every attribute of :class:`~genledger.core.generation.Generation` not in
``NOT_IN_CONTRACT`` appears under its contract name; money (``*_pico``) in USD, times in
ISO 8601; ``CONTRACT_CONSTANTS`` fill the keys genledger has no value for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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


def _json_value(attribute: str, value: Any) -> Any:
    if value is None:
        return None
    if attribute.endswith("_pico"):
        return to_usd(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if attribute == "provider_responses":
        return [attempt.to_json() for attempt in value]
    return value


def generation_json(generation: Generation) -> dict[str, Any]:
    """The contract's generation object: every key present, nulls where unknown."""
    data = {name: _json_value(attribute, getattr(generation, attribute)) for attribute, name in _SHOWN}
    data.update(CONTRACT_CONSTANTS)
    return data
