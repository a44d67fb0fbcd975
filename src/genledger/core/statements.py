"""Sealed daily statements: totals, and a hash over the day's records chained day to day.

A day's entries are its generations (by ``created_at``) and the adjustments written that day
(by their own ``created_at``: a correction is booked when it is made). Each entry has a
digest, SHA-256 over its canonical JSON (sorted keys, exact integers, ISO times); the day's
hash is SHA-256 over the previous statement's hash and the sorted ``(entry id, digest)``
pairs. Keeping the pairs lets ``verify`` name the entry added, changed or removed after its
day was closed, not only say that something differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from genledger.core.adjustments import Adjustment
from genledger.core.generation import Generation
from genledger.core.records import record

GENESIS = "0" * 64
"""The previous hash of the first statement ever closed."""


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC day as ``[start, end)``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _digest(data: Any) -> str:
    return hashlib.sha256(orjson.dumps(_plain(data), option=orjson.OPT_SORT_KEYS)).hexdigest()


def generation_entry(generation: Generation) -> tuple[str, str]:
    """The entry id and digest of a generation."""
    return f"generation:{generation.id}", _digest(generation)


def adjustment_entry(adjustment: Adjustment) -> tuple[str, str]:
    return f"adjustment:{adjustment.id}", _digest(adjustment)


def chain_hash(previous: str, entries: Mapping[str, str]) -> str:
    """The day's hash: its entries in id order, chained to the previous statement's hash."""
    body = "\n".join(f"{entry_id} {digest}" for entry_id, digest in sorted(entries.items()))
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


@record
class Total:
    """One key's and model's sums for the day: generations, and charges plus adjustments."""

    key_id: str
    model: str
    requests: int
    usage_pico: int


@record
class Statement:
    """A closed day: its totals, record count, hash and the hash it is chained to."""

    day: date
    closed_at: datetime
    record_count: int
    totals: tuple[Total, ...]
    hash: str
    previous_hash: str
    entries: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)


def totals(generations: Iterable[Generation], adjustments: Iterable[Adjustment]) -> tuple[Total, ...]:
    """Per key and model: the day's generations and their usage, plus the day's adjustments
    (under the model of the generation each adjusts)."""
    sums: dict[tuple[str, str], list[int]] = {}
    for g in generations:
        row = sums.setdefault((g.key_id, g.model), [0, 0])
        row[0] += 1
        row[1] += g.charge_pico
    for a in adjustments:
        row = sums.setdefault((a.key_id, a.model), [0, 0])
        row[1] += a.amount_pico
    return tuple(Total(k, m, n, u) for (k, m), (n, u) in sorted(sums.items()))


class Change(StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


@record
class Discrepancy:
    """What ``verify`` found wrong with a closed day: an entry, or the chain itself."""

    day: date
    change: Change | None
    entry_id: str | None
    detail: str


def compare(statement: Statement, entries: Mapping[str, str], previous_hash: str) -> list[Discrepancy]:
    """Every difference between a closed day and its entries as the ledger holds them now."""
    found = []
    for entry_id in sorted(set(statement.entries) | set(entries)):
        sealed, now = statement.entries.get(entry_id), entries.get(entry_id)
        if sealed == now:
            continue
        change = Change.ADDED if sealed is None else Change.REMOVED if now is None else Change.CHANGED
        found.append(Discrepancy(statement.day, change, entry_id, f"{entry_id} was {change} after close"))
    if statement.previous_hash != previous_hash:
        found.append(
            Discrepancy(statement.day, None, None, "chained to a hash that is not the previous statement's")
        )
    if chain_hash(statement.previous_hash, statement.entries) != statement.hash:
        found.append(Discrepancy(statement.day, None, None, "the statement's own hash does not match it"))
    return found
