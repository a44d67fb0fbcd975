"""How long an upstream asks us to wait: ``retry-after-ms`` and ``Retry-After``, hardened.

Upstreams send what they like, and what they send is relayed to callers, so every value
is checked before it is believed:

* ``retry-after-ms`` (OpenAI's) wins when it is a usable number of milliseconds;
* then ``Retry-After``, as delta-seconds (fractions and exponents accepted) or an HTTP
  date; a date in the past means 0;
* NaN, infinities, negative numbers, empty and unparsable values are ignored, as if the
  header were absent. A negative wait is a broken upstream, not a request to retry at
  once: dropping it lets the caller's own backoff decide;
* every wait is capped at :data:`MAX_RETRY_AFTER_S`.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from datetime import UTC
from decimal import Decimal

MAX_RETRY_AFTER_S = 3600.0
"""The longest wait we believe or relay; an upstream asking for more gets this."""

_MAX = Decimal(MAX_RETRY_AFTER_S)
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # no sign, nan or inf


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait, in ``[0, MAX_RETRY_AFTER_S]``, or None when no header is usable.

    ``headers`` may be any mapping; names are matched without regard to case. ``now`` is
    the current POSIX time, against which an HTTP date is measured.
    """
    milliseconds = _header(headers, "retry-after-ms")
    if milliseconds is not None:
        seconds = _delta_seconds(milliseconds, scale=Decimal(1000))
        if seconds is not None:
            return seconds
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _delta_seconds(value)
    if seconds is not None:
        return seconds
    return _until_date(value, now)


def retry_after_header(seconds: float) -> str | None:
    """The ``Retry-After`` value for a wait: whole seconds rounded up, capped; None if unusable."""
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return str(math.ceil(min(seconds, MAX_RETRY_AFTER_S)))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _delta_seconds(value: str, scale: Decimal = Decimal(1)) -> float | None:
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        return None
    # Decimal, not float: "1e400" is a huge wait to cap, not an infinity to refuse.
    amount = Decimal(text)
    if amount >= _MAX * scale:
        return MAX_RETRY_AFTER_S
    return float(amount / scale)


def _until_date(value: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    try:
        seconds = when.timestamp() - now
    except (OverflowError, OSError, ValueError):
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
