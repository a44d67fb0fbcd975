"""GCRA (the generic cell rate algorithm), pure: the state is one timestamp per limit.

The theoretical arrival time ``tat`` is when the limit would be fully replenished. A
request is allowed when, after adding its cost, ``tat`` is at most one period ahead of
now. The Redis backend runs the same arithmetic in a Lua script.
"""

from __future__ import annotations

import math

from genledger.core.records import record

PERIOD_MS = 60_000.0


@record
class Outcome:
    allowed: bool
    tat: float  # the new state, ms since the epoch
    remaining: int
    reset_ms: float  # when the limit is whole again, ms since the epoch
    retry_after_ms: float


def take(tat: float | None, now: float, limit: int, cost: float = 1, period: float = PERIOD_MS) -> Outcome:
    """Take ``cost`` units of a ``limit`` per ``period``; refused if that would exceed it."""
    interval = period / limit
    current = max(tat if tat is not None else now, now)
    new_tat = current + cost * interval
    if new_tat - now > period:
        return Outcome(False, current, 0, current, new_tat - period - now)
    remaining = math.floor((period - (new_tat - now)) / interval)
    return Outcome(True, new_tat, remaining, new_tat, 0.0)


def exhausted(tat: float | None, now: float, limit: int, period: float = PERIOD_MS) -> Outcome:
    """Whether any of the limit is left (for tokens, debited after the fact); takes nothing."""
    interval = period / limit
    current = max(tat if tat is not None else now, now)
    if current - now + interval > period:
        return Outcome(False, current, 0, current, current - period + interval - now)
    return Outcome(True, current, math.floor((period - (current - now)) / interval), current, 0.0)


def debit(tat: float | None, now: float, limit: int, cost: float, period: float = PERIOD_MS) -> float:
    """The state after ``cost`` units were used, allowed or not (tokens are known afterwards)."""
    return max(tat if tat is not None else now, now) + cost * period / limit
