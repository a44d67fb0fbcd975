"""The generations store: records committed through the group-commit writer, read by owner."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.core.activity import DAY, KEY, ActivityRows, Grouping, day_of
from genledger.core.adjustments import Adjustment
from genledger.core.generation import FIELDS, Generation, ProviderAttempt, column_name
from genledger.core.records import record
from genledger.core.stores import Cursor, GenerationFilter, Page, PeriodStarts, PeriodUsage
from genledger.ledger import adjustments as entries
from genledger.ledger.activity import activity
from genledger.ledger.filters import conditions
from genledger.ledger.rollup import ActivityRollup
from genledger.ledger.schema import generation_metadata, generations
from genledger.ledger.timestamps import utc as _utc
from genledger.ledger.unavailable import unreachable
from genledger.ledger.writer import BatchWriter, Sink

ROLLUP_GRACE = timedelta(seconds=1260)
"""After an hour's end, how long before the rollup counts it closed: the default longest request
(``routing.total_timeout``, 300 s, then a stream's ``stream_timeout``, 900 s) plus a minute, as
the statements' grace."""
_COLUMNS = tuple((attribute, column_name(attribute)) for attribute in FIELDS)


@record
class Settlement:
    """A generation to record; ``reserved``: its request holds a reservation under the
    generation's id, given back as the generation is charged."""

    generation: Generation
    reserved: bool = False


def generation_row(generation: Generation) -> dict[str, Any]:
    """The generation's row, by column name."""
    return dict(zip(_TABLE_COLUMNS, generation_values(generation), strict=True))


_TABLE_COLUMNS = [column.name for column in generations.columns]
_ATTRIBUTE_OF = {column: attribute for attribute, column in _COLUMNS}
_IN_TABLE_ORDER = attrgetter(*(_ATTRIBUTE_OF[column] for column in _TABLE_COLUMNS))
_PROVIDER_RESPONSES = _TABLE_COLUMNS.index("provider_responses")


def generation_values(generation: Generation) -> list[Any]:
    """The generation's row as its values in the table's column order (what the writer encodes)."""
    values = list(_IN_TABLE_ORDER(generation))
    values[_PROVIDER_RESPONSES] = [attempt.to_json() for attempt in generation.provider_responses]
    return values


# Where each attribute's column is in a row of ``select(generations)``: a list page decodes
# a hundred rows, and a tuple's index is several times cheaper than a mapping's key.
_ATTRIBUTES = tuple(attribute for attribute, _ in _COLUMNS)
_IN_ROW = itemgetter(*(generations.c.keys().index(column) for _, column in _COLUMNS))


def generation_from_row(row: Sequence[Any]) -> Generation:
    """The generation of a row of ``select(generations)`` (its columns in the table's order)."""
    values = dict(zip(_ATTRIBUTES, _IN_ROW(row), strict=True))
    values["created_at"] = _utc(values["created_at"])
    values["provider_responses"] = tuple(
        ProviderAttempt.from_json(item) for item in values["provider_responses"] or ()
    )
    return Generation(**values)


def charges(batch: Sequence[Settlement]) -> list[tuple[str, int]]:
    """(key id, amount to charge) per key of a batch, by key id.

    Written in the same transaction as the batch's generations, so a key's usage always
    equals the sum of its generations' charges. The fixed order keeps concurrent batches
    from deadlocking.
    """
    charged: dict[str, int] = defaultdict(int)
    for settlement in batch:
        charged[settlement.generation.key_id] += settlement.generation.charge_pico
    return sorted(charged.items())


def settled_reservations(batch: Sequence[Settlement]) -> list[str]:
    """The ids of the reservations a batch gives back, in their keys' order (as ``charges``).

    Each is given back only if its row is still there (``reservations``): a reservation that
    another instance reclaimed after its lease ran out is not taken off the key twice.
    """
    held = [s.generation for s in batch if s.reserved]
    return [g.id for g in sorted(held, key=lambda g: (g.key_id, g.id))]


def list_statement(
    where: GenerationFilter, dialect: str, *, limit: int, after: Cursor | None = None
) -> Select[Any]:
    """The list's query: ``where`` newest first by ``(created_at, id)``, ``limit`` rows after ``after``.

    Its plans are pinned by ``tests/ledger/test_query_plans.py``: every first page walks an index.
    """
    if where.metadata:
        return _list_by_pair(where, dialect, limit=limit, after=after)
    found = conditions(where, dialect)
    if after is not None:
        # A row value comparison, which walks the (..., created_at, id) indexes backwards.
        found.append(tuple_(generations.c.created_at, generations.c.id) < (after.created_at, after.id))
    return (
        select(generations)
        .where(*found)
        .order_by(generations.c.created_at.desc(), generations.c.id.desc())
        .limit(limit)
    )


def _list_by_pair(where: GenerationFilter, dialect: str, *, limit: int, after: Cursor | None) -> Select[Any]:
    """The list walked from the first metadata pair's rows (its primary key, newest first).

    A pair is on a fraction of the rows, and only its side table knows which, so the walk
    starts there, narrows by key and time there, and joins each generation by its id.
    """
    pairs = generation_metadata
    (key, value), others = where.metadata[0], where.metadata[1:]
    rest = replace(where, key_id=None, created_after=None, created_before=None, metadata=others)
    found = [pairs.c.key == key, pairs.c.value == value, *conditions(rest, dialect)]
    if where.key_id is not None:
        found.append(pairs.c.key_id == where.key_id)
    if where.created_after is not None:
        found.append(pairs.c.created_at >= where.created_after)
    if where.created_before is not None:
        found.append(pairs.c.created_at < where.created_before)
    if after is not None:
        found.append(tuple_(pairs.c.created_at, pairs.c.generation_id) < (after.created_at, after.id))
    return (
        select(generations)
        .select_from(pairs.join(generations, generations.c.id == pairs.c.generation_id))
        .where(*found)
        .order_by(pairs.c.created_at.desc(), pairs.c.generation_id.desc())
        .limit(limit)
    )


def metadata_rows(generation: Generation) -> list[dict[str, Any]]:
    """The rows of ``generation_metadata`` for ``generation``: none without metadata."""
    return [
        {
            "key": key,
            "value": value,
            "created_at": generation.created_at,
            "generation_id": generation.id,
            "key_id": generation.key_id,
        }
        for key, value in (generation.metadata or {}).items()
    ]


class SqlGenerationStore:
    """:class:`~genledger.core.stores.GenerationStore` over the ledger's database."""

    def __init__(
        self, engine: AsyncEngine, sink: Sink[Settlement], *, rollup_grace: timedelta = ROLLUP_GRACE
    ) -> None:
        self._engine = engine
        self._writer: BatchWriter[Settlement] = BatchWriter(sink, transient=unreachable)
        self.rollup = ActivityRollup(engine, rollup_grace)

    def start(self) -> None:
        self._writer.start()

    async def close(self) -> None:
        await self._writer.close()

    async def record(self, generation: Generation, *, reserved: bool = False) -> None:
        await self._writer.write(Settlement(generation, reserved))

    async def _one(self, *conditions: Any) -> Generation | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(generations).where(*conditions))).first()
        return generation_from_row(row) if row is not None else None

    async def get(self, generation_id: str, key_id: str) -> Generation | None:
        return await self._one(generations.c.id == generation_id, generations.c.key_id == key_id)

    async def lookup(self, generation_id: str) -> Generation | None:
        return await self._one(generations.c.id == generation_id)

    async def usage_in_periods(self, key_ids: Sequence[str], starts: PeriodStarts) -> dict[str, PeriodUsage]:
        if not key_ids:
            return {}
        # One read of the rollup's days (and the hours since), per day and key, summed here.
        since = min(starts.day, starts.week, starts.month)
        one = key_ids[0] if len(key_ids) == 1 else None
        rows = await self.activity(GenerationFilter(key_id=one, created_after=since), (DAY, KEY))
        found: dict[str, list[int]] = {}
        for row in rows:
            day, key_id = row.group
            if key_id is None or day is None:
                continue
            total = found.setdefault(key_id, [0, 0, 0])
            for i, start in enumerate((starts.day, starts.week, starts.month)):
                if day >= day_of(start):
                    total[i] += row.usage_pico
        return {key_id: PeriodUsage(*found.get(key_id, (0, 0, 0))) for key_id in key_ids}

    async def last_used(self, key_ids: Sequence[str]) -> dict[str, datetime]:
        if not key_ids:
            return {}
        # One index seek per key (ix_generations_key_created), however long the history: a
        # scalar max() per key, which both databases answer from the index's end. (SQLite walked
        # every entry of the keys for a GROUP BY over an IN list: 0.7-1 s at 1M rows.)
        ids = list(key_ids)
        latest = [
            select(func.max(generations.c.created_at)).where(generations.c.key_id == key_id).scalar_subquery()
            for key_id in ids
        ]
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(*latest))).one()
        return {key_id: _utc(created_at) for key_id, created_at in zip(ids, row, strict=True) if created_at}

    async def usage_by_day(self, key_id: str, since: datetime) -> list[tuple[str, int, int]]:
        rows = await self.activity(GenerationFilter(key_id=key_id, created_after=since), (DAY,))
        return [(row.group[0] or "", row.requests, row.usage_pico) for row in rows]

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[Adjustment]:
        return await entries.write(self._engine, adjustments) if adjustments else []

    async def adjustments_of(self, generation_ids: Sequence[str]) -> dict[str, tuple[Adjustment, ...]]:
        return await entries.of(self._engine, generation_ids) if generation_ids else {}

    async def adjustments_written(self, start: datetime, end: datetime) -> list[Adjustment]:
        return await entries.written(self._engine, start, end)

    async def list(self, where: GenerationFilter, *, limit: int, after: Cursor | None = None) -> Page:
        query = list_statement(where, self._engine.dialect.name, limit=limit + 1, after=after)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        items = [generation_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, Cursor(items[-1].created_at, items[-1].id) if more else None)

    async def activity(
        self,
        where: GenerationFilter,
        group_by: Sequence[Grouping],
        *,
        latency: bool = False,
        newest: int | None = None,
    ) -> ActivityRows:
        return await activity(
            self._engine, where, group_by, latency=latency, newest=newest, rollup=self.rollup
        )
