"""ISO 8601 text to UTC: every way it can fail is a ValueError (never an OverflowError)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from genledger.core.instants import OutOfRange, parse_utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27T10:00:00z", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27T12:00:00+02:00", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27", datetime(2026, 11, 27, tzinfo=UTC)),  # no offset: UTC
        ("0001-01-01T00:00:00-01:00", datetime(1, 1, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_time_is_read_in_utc(text: str, expected: datetime) -> None:
    parsed = parse_utc(text)
    assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "yesterday", "", "2026-13-01"]
)
def test_a_time_outside_utcs_years_or_not_iso_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_utc(text)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_time_outside_utcs_years_says_so(text: str) -> None:
    with pytest.raises(OutOfRange, match="outside the range of UTC times"):
        parse_utc(text)
