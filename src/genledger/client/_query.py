"""Query strings of the read endpoints: Python values rendered once, as the server parses them.

Omitted (``None``) filters are left out. Names and order follow the API's grammar, so a query
string is stable and readable in logs. Values are not checked here: the server answers a bad
one with a 400 naming its parameter (``error.metadata["param"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Context, Decimal

__all__ = ["USD", "Moment", "activity_params", "generation_list_params"]

Moment = datetime | date | str
"""A point in time: a ``datetime`` (naive means UTC), a ``date`` (its midnight UTC) or ISO 8601 text."""

USD = Decimal | float | int | str
"""An amount of US dollars; ``Decimal`` or text keep it exact."""


def generation_list_params(
    *,
    created_after: Moment | None,
    created_before: Moment | None,
    model: str | None,
    provider_name: str | None,
    finish_reason: str | None,
    streamed: bool | None,
    cancelled: bool | None,
    external_user: str | None,
    session_id: str | None,
    metadata: Mapping[str, str] | None,
    api_key_hash: str | None,
    min_cost: USD | None,
    limit: int | None,
) -> dict[str, str]:
    """The filters of ``GET /generations`` (everything but the cursor)."""
    params: dict[str, str | None] = {
        "created_after": _moment(created_after),
        "created_before": _moment(created_before),
        "model": model,
        "provider_name": provider_name,
        "finish_reason": finish_reason,
        "streamed": _flag(streamed),
        "cancelled": _flag(cancelled),
        "external_user": external_user,
        "session_id": session_id,
    }
    for key, value in (metadata or {}).items():
        params[f"metadata[{key}]"] = value
    params["api_key_hash"] = api_key_hash
    params["min_cost"] = _usd(min_cost)
    params["limit"] = str(limit) if limit is not None else None
    return {name: value for name, value in params.items() if value is not None}


def activity_params(
    *, date: date | str | None, api_key_hash: str | None, group_by: str | Sequence[str] | None
) -> dict[str, str]:
    """The query of ``GET /activity``; several ``group_by`` keys are sent comma-separated."""
    if isinstance(date, datetime):
        date = date.date()
    params = {
        "date": date.isoformat() if not isinstance(date, str | None) else date,
        "api_key_hash": api_key_hash,
        "group_by": group_by if isinstance(group_by, str | None) else ",".join(group_by),
    }
    return {name: value for name, value in params.items() if value is not None}


def _moment(value: Moment | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


_PICODOLLAR = Decimal("1e-12")
_WIDE = Context(prec=400)  # room for any finite float at 12 decimals


def _usd(value: USD | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("min_cost must be an amount of USD, not a bool")
    if not isinstance(value, float):
        return format(Decimal(value), "f")
    # repr() is the shortest text that reads back as the same float: 0.1 -> "0.1", not the
    # binary expansion Decimal(0.1) would give. Arithmetic leaves digits past the server's
    # picodollar (0.1 + 0.2 is 0.30000000000000004): a float is rounded to it, a Decimal or a
    # string is sent as given (the server refuses more than 12 decimals of those).
    amount = Decimal(repr(value)).quantize(_PICODOLLAR, context=_WIDE)
    return format(amount.normalize(_WIDE), "f")
