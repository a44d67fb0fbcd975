"""Instants from the wire: ISO 8601 text as an aware UTC datetime, or ``ValueError``."""

from __future__ import annotations

from datetime import UTC, datetime


class OutOfRange(ValueError):
    """ISO 8601 text naming an instant no UTC datetime can hold (before year 1 or after 9999)."""


def parse_utc(text: str) -> datetime:
    """``text`` (ISO 8601; ``Z`` or no offset: UTC) as an aware datetime in UTC.

    ``ValueError`` when it is not ISO 8601, and :class:`OutOfRange` when it is but names an
    instant a datetime cannot hold in UTC: ``0001-01-01T00:00:00+14:00`` is in year 0 there (``astimezone``
    raises ``OverflowError`` for it, which callers catching ``ValueError`` would let through).
    """
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise OutOfRange(f"{text!r} is outside the range of UTC times (years 1 to 9999)") from None
