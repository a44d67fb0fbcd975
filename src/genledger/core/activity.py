"""Spending summed per group: what ``GET /activity`` and ``genledger report`` show.

A :class:`Grouping` names one dimension a generation is grouped by; an :class:`ActivityRow`
is one group's sums, exact integers (money in picodollars). Each store computes them in its
own storage; the grammar of a grouping (``day,model,metadata.team``) is parsed here once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum

from genledger.core.records import record

MAX_METADATA_KEY = 64
PERCENTILES = (0.5, 0.95)


class By(StrEnum):
    DAY = "day"
    HOUR = "hour"
    MODEL = "model"
    PROVIDER = "provider"
    KEY = "key"
    USER = "user"
    SESSION = "session"
    METADATA = "metadata"


@record
class Grouping:
    """One dimension to group by; ``metadata_key`` names the key when ``by`` is METADATA."""

    by: By
    metadata_key: str | None = None

    def __str__(self) -> str:
        return f"metadata.{self.metadata_key}" if self.by is By.METADATA else self.by.value


DAY, HOUR, MODEL, PROVIDER = Grouping(By.DAY), Grouping(By.HOUR), Grouping(By.MODEL), Grouping(By.PROVIDER)
KEY = Grouping(By.KEY)
ENDPOINT_DAYS = (DAY, MODEL, PROVIDER)
"""OpenRouter's own grouping: one item per UTC day, model and provider."""


def parse_groupings(text: str, *, ignore: Iterable[str] = ()) -> tuple[Grouping, ...]:
    """``day,model,metadata.team`` as groupings, in order, without repeats.

    Names in ``ignore`` are skipped. ``ValueError`` says which name is not a grouping.
    """
    skipped = set(ignore)
    found: list[Grouping] = []
    for raw in text.split(","):
        name = raw.strip()
        if name in skipped:
            continue
        if name.startswith("metadata."):
            key = name[len("metadata.") :]
            if not 1 <= len(key) <= MAX_METADATA_KEY:
                raise ValueError(f"{name!r} must name a metadata key of 1 to {MAX_METADATA_KEY} characters")
            grouping = Grouping(By.METADATA, key)
        elif name in By.__members__.values() and name != By.METADATA:
            grouping = Grouping(By(name))
        else:
            kinds = ", ".join(b.value for b in By if b is not By.METADATA)
            raise ValueError(f"{name!r} is not one of {kinds} or metadata.<key>")
        if grouping not in found:
            found.append(grouping)
    return tuple(found)


def day_of(moment: datetime) -> str:
    """The UTC day bucket: ``2026-11-27``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def hour_of(moment: datetime) -> str:
    """The UTC hour bucket: ``2026-11-27T13:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:00:00Z")


@record
class ActivityRow:
    """One group's sums. ``group`` holds one value per grouping asked for, in that order
    (None: the generations had none, e.g. no session). Percentiles are None unless asked
    for, or when no generation of the group has a latency."""

    group: tuple[str | None, ...]
    requests: int
    usage_pico: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    errors: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


ActivityRows = list[ActivityRow]
"""Rows as stores return them (a name that the stores' own ``list`` methods cannot shadow)."""


def group_order(group: Sequence[str | None]) -> tuple[tuple[bool, str], ...]:
    """The order rows are returned in: by each value, None first."""
    return tuple((value is not None, value or "") for value in group)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """PostgreSQL's ``percentile_cont``: linear interpolation between the closest ranks."""
    return interpolate(fraction, len(ordered), lambda rank: ordered[rank])


def ranks(fraction: float, count: int) -> tuple[int, int]:
    """The two 0-based ranks ``percentile_cont`` interpolates between, among ``count`` values."""
    position = fraction * (count - 1)
    return math.floor(position), math.ceil(position)


def interpolate(fraction: float, count: int, value_at: Callable[[int], float]) -> float:
    low, high = ranks(fraction, count)
    position = fraction * (count - 1)
    below = value_at(low)
    return below + (position - low) * (value_at(high) - below)
