"""Closing a day into a sealed statement, and verifying every closed day against the records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from genledger.core.records import record
from genledger.core.statements import (
    GENESIS,
    Discrepancy,
    Statement,
    Total,
    adjustment_entry,
    chain_hash,
    compare,
    day_bounds,
    generation_entry,
    totals,
)
from genledger.core.stores import GenerationFilter, GenerationStore, StatementStore, walk

BATCH = 1000


class NotClosable(ValueError):
    """The day cannot be closed (yet): the message says why."""


async def entries_of(generations: GenerationStore, day: date) -> tuple[dict[str, str], tuple[Total, ...]]:
    """The day's entry digests as the ledger holds them now, and the day's totals."""
    start, end = day_bounds(day)
    found: dict[str, str] = {}
    records = []
    async for batch in walk(
        generations, GenerationFilter(created_after=start, created_before=end), batch=BATCH
    ):
        records += batch
        found.update(generation_entry(g) for g in batch)
    adjustments = await generations.adjustments_written(start, end)
    found.update(adjustment_entry(a) for a in adjustments)
    return found, totals(records, adjustments)


@record
class StatementBook:
    generations: GenerationStore
    statements: StatementStore

    async def close(self, day: date, *, grace: timedelta, now: datetime | None = None) -> Statement:
        """Seal ``day``: after its end plus ``grace`` (late streams are recorded when they end),
        and after every earlier closed day (the chain only grows forward)."""
        now = now or datetime.now(UTC)
        _, end = day_bounds(day)
        if now < end + grace:
            raise NotClosable(
                f"{day} can be closed from {(end + grace).isoformat()} (its grace period for late streams)"
            )
        closed = await self.statements.statements()
        if any(s.day >= day for s in closed):
            latest = max(s.day for s in closed)
            raise NotClosable(f"{day} cannot be closed: days up to {latest} are closed already")
        previous = closed[-1].hash if closed else GENESIS
        found, day_totals = await entries_of(self.generations, day)
        statement = Statement(
            day=day,
            closed_at=now,
            record_count=len(found),
            totals=day_totals,
            hash=chain_hash(previous, found),
            previous_hash=previous,
            entries=found,
        )
        if not await self.statements.seal(statement):
            raise NotClosable(f"{day} was closed meanwhile")
        return statement

    async def verify(self) -> tuple[list[Statement], list[Discrepancy]]:
        """Recompute every closed day from the records: each difference, named."""
        closed = await self.statements.statements(entries=True)
        problems: list[Discrepancy] = []
        previous = GENESIS
        for statement in closed:
            found, _ = await entries_of(self.generations, statement.day)
            problems += compare(statement, found, previous)
            previous = statement.hash
        return closed, problems
