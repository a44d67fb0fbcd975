"""Times as the ledger reads them back."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; everything in the ledger is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
