"""The activity rollup: exact sums per closed hour and day, so that activity over weeks reads
thousands of rows instead of millions.

What it holds, with W its ``hours_until`` and D its ``days_until`` (D <= W, D a UTC midnight):

- ``activity_hours``: for every hour H < W, per key, model and provider, the generations made
  in H (requests, tokens, errors, usage) plus the adjustments written before W of those
  generations (an adjustment counts where its generation does);
- ``activity_days``: the same per UTC day, for every day before D;
- ``activity_{hours,days}_by_model``, ``_by_key`` and ``_total``: the same summed over the keys,
  over the models and providers, or over all three: a read takes the smallest table that has
  the dimensions it groups or filters by (a day at 1M generations: ~900 rows in full, ~60 by
  model, ~50 by key, one in total).

Why it is exact: an hour is rolled up only once it is closed, ``grace`` after its end. A stream
is recorded when it ends with the time it began, and PostgreSQL commits rows out of time order,
so ``grace`` is the longest a request may run plus a margin (the statements' grace); after it,
no generation of the hour can still commit. Generations and adjustments are never changed.
Adjustments written at or after W are not in the rollup: readers add them from ``adjustments``
(``late_adjustments``), a handful of recent rows.

How it is kept: lazily, by the reads, a few steps each (:meth:`ActivityRollup.catch_up`), in
steps of at most one day (days with nothing are jumped): a ledger never rolled up (an upgrade)
is caught up over many reads, each answered exactly meanwhile (the generations answer for what
is not rolled up yet). Not at start-up: rows imported with past times after the watermark
passed them would be missed, and a read that comes first sees them.
A step aggregates outside any transaction, then in one short transaction moves the watermark
from the value it read (compare-and-set first, so a concurrent step of another instance makes
this one roll back) and inserts its rows tagged ``through`` = the new W. A reader
that read W counts only rows with ``through <= W``, so a step committed meanwhile is never half
counted. The hot write path pays nothing per record; on SQLite, one short write transaction an
hour (a few hundred rows) may make a batch wait for the lock in the writer's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, case, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from genledger.core.activity import ActivityRow, By, Grouping
from genledger.core.records import record
from genledger.core.stores import GenerationFilter
from genledger.ledger.buckets import bucket, time_bucket
from genledger.ledger.hints import not_indexed
from genledger.ledger.schema import (
    ROLLUP_DIMENSIONS,
    ROLLUP_SUMS,
    activity_rollup_state,
    adjustments,
    generations,
    rollups,
)
from genledger.ledger.timestamps import utc

ONE_HOUR = timedelta(hours=1)
ONE_DAY = timedelta(days=1)
ROLLED = frozenset({By.DAY, By.HOUR, By.MODEL, By.PROVIDER, By.KEY})
"""The groupings the rollup can answer."""
_DIMENSIONS = ROLLUP_DIMENSIONS[""]
_SUMS = ROLLUP_SUMS
# The smallest table first: a read takes the first whose dimensions cover what it needs.
_BY_SIZE = sorted(ROLLUP_DIMENSIONS.items(), key=lambda item: len(item[1]))
_BY_COLUMN = {By.MODEL: "model", By.PROVIDER: "provider_name", By.KEY: "key_id"}


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


def _ceil(moment: datetime, floor: Any, step: timedelta) -> datetime:
    down: datetime = floor(moment)
    return down if down == moment else down + step


@record
class Watermarks:
    """Hours before ``hours`` and days before ``days`` are rolled up (None: nothing yet)."""

    hours: datetime | None
    days: datetime | None


@record
class Plan:
    """How a window splits: rolled-up days and hours, and the raw edges read from generations.

    Every range is ``[start, end)``; a None start is "from the beginning", a None end "on".
    """

    days: tuple[datetime | None, datetime] | None
    hours: Sequence[tuple[datetime | None, datetime]]
    rolled: tuple[datetime | None, datetime]
    raw: list[tuple[datetime | None, datetime | None]]


def answers(where: GenerationFilter, group_by: Sequence[Grouping]) -> bool:
    """Whether the rollup can answer: only its dimensions grouped, only key, model, provider
    and time filtered."""
    plain = GenerationFilter(
        key_id=where.key_id,
        created_after=where.created_after,
        created_before=where.created_before,
        model=where.model,
        provider_name=where.provider_name,
        drift_tolerance_pico=where.drift_tolerance_pico,  # a setting, not a filter
    )
    return plain == where and all(grouping.by in ROLLED for grouping in group_by)


def plan(where: GenerationFilter, marks: Watermarks, *, hourly: bool) -> Plan | None:
    """The window of ``where`` split at whole hours (and days, unless grouped ``hourly``) below
    the watermarks; None when no whole rolled-up hour lies in it."""
    if marks.hours is None or marks.days is None:
        return None
    after, before = where.created_after, where.created_before
    low = _ceil(after, floor_hour, ONE_HOUR) if after is not None else None
    high = min(floor_hour(before), marks.hours) if before is not None else marks.hours
    if low is not None and low >= high:
        return None
    raw: list[tuple[datetime | None, datetime | None]] = []
    if after is not None and low is not None and after < low:
        raw.append((after, low))
    if before is None or high < before:
        raw.append((high, before))
    day_low = _ceil(low, floor_day, ONE_DAY) if low is not None else None
    day_high = min(floor_day(high), marks.days)
    if hourly or (day_low is not None and day_low >= day_high):
        return Plan(None, [(low, high)], (low, high), raw)
    hours = [(low, day_low)] if day_low is not None and low is not None and low < day_low else []
    if day_high < high:
        hours.append((day_high, high))
    return Plan((day_low, day_high), hours, (low, high), raw)


class ActivityRollup:
    """The rollup of one ledger: caught up by its readers, read by ``ledger/activity.py``."""

    def __init__(self, engine: AsyncEngine, grace: timedelta) -> None:
        self._engine = engine
        self.grace = grace
        self._catching_up = asyncio.Lock()  # one step at a time in this process; the CAS for others

    async def catch_up(
        self, now: datetime | None = None, *, max_steps: int | None = None, wait: bool = True
    ) -> Watermarks:
        """Roll up every hour closed by ``now`` (its end ``grace`` ago); the watermarks reached.

        A reader bounds its share (``max_steps``: a ledger never rolled up takes minutes) and,
        with ``wait=False``, takes the watermarks as they are while another read of this process
        is stepping: the generations answer for the rest.
        """
        target = floor_hour((now or datetime.now(UTC)) - self.grace)
        if not wait and self._catching_up.locked():
            return await self._read()
        async with self._catching_up:
            marks = await self._read()
            steps = 0
            while (marks.hours is None or marks.hours < target) and (max_steps is None or steps < max_steps):
                moved = await self._step(marks, target)
                marks = moved if moved is not None else await self._read()
                steps += 1
            return marks

    async def rebuild(self, now: datetime | None = None) -> Watermarks:
        """Forget every rolled-up row and roll the whole ledger up again; the watermarks reached.

        For generations written with times the watermark had already passed (an import, a
        restore from a backup), which the rollup would otherwise never count. A read of
        activity while this runs may come out short: run it when the ledger is quiet.
        """
        state = activity_rollup_state
        async with self._catching_up, self._engine.begin() as connection:
            for table in rollups.values():
                await connection.execute(delete(table))
            # A step of another instance under way fails its compare-and-set on this.
            await connection.execute(
                update(state).where(state.c.id == 1).values(hours_until=None, days_until=None)
            )
        return await self.catch_up(now)

    async def _read(self) -> Watermarks:
        async with self._engine.connect() as connection:
            return await watermarks(connection)

    async def _step(self, marks: Watermarks, target: datetime) -> Watermarks | None:
        """One step towards ``target``; None when another instance moved the watermark first."""
        dialect = self._engine.dialect.name
        if marks.hours is None or marks.days is None:
            async with self._engine.connect() as connection:
                first = (await connection.execute(select(func.min(generations.c.created_at)))).scalar()
            start = floor_day(utc(first)) if first is not None else floor_day(target)
            return await self._move(marks, Watermarks(start, start), [], [])
        start, days = marks.hours, marks.days
        end = min(target, floor_day(start) + ONE_DAY)
        async with self._engine.connect() as connection:
            made = (await connection.execute(_generations_between(start, end, dialect))).all()
            late = (await connection.execute(_adjustments_between(start, end, dialect))).all()
            if not made and not late:
                # Nothing in this day: go on to the next day with a generation or an adjustment
                # (a sparse ledger, or one upgraded after a quiet spell, is not walked day by day).
                end = await _next_active_day(connection, end, target)
        hour_rows = [_row(found, end) for found in (*made, *late)]
        # Late adjustments of days already rolled up go into those days' rows as well.
        day_rows = [{**row, "start": floor_day(row["start"])} for row in map(_row, late, [end] * len(late))]
        day_rows = [row for row in day_rows if row["start"] < days]
        return await self._move(marks, Watermarks(end, floor_day(end)), hour_rows, day_rows)

    async def _move(
        self,
        marks: Watermarks,
        to: Watermarks,
        hour_rows: list[dict[str, Any]],
        day_rows: list[dict[str, Any]],
    ) -> Watermarks | None:
        state = activity_rollup_state
        async with self._engine.begin() as connection:
            moved = await connection.execute(
                update(state)
                .where(state.c.id == 1, _is(state.c.hours_until, marks.hours))
                .values(hours_until=to.hours, days_until=to.days)
            )
            if moved.rowcount != 1:
                await connection.rollback()
                return None
            for suffix, dimensions in ROLLUP_DIMENSIONS.items():
                for period, rows in (("hours", hour_rows), ("days", day_rows)):
                    if rows:
                        await connection.execute(insert(rollups[period, suffix]), _project(rows, dimensions))
                for day in _days_to_sum(marks, to, hour_rows):
                    await connection.execute(_days_from_hours(suffix, day, to.hours))
        return to

    async def sums(
        self,
        connection: AsyncConnection,
        where: GenerationFilter,
        group_by: Sequence[Grouping],
        the_plan: Plan,
        marks: Watermarks,
    ) -> list[ActivityRow]:
        """The rolled-up part of a window: its days' and hours' rows, and adjustments written since."""
        dialect = self._engine.dialect.name
        found: list[ActivityRow] = []
        suffix = _smallest(where, group_by)
        parts: list[tuple[Table, tuple[datetime | None, datetime]]] = [
            (rollups["hours", suffix], span) for span in the_plan.hours
        ]
        if the_plan.days is not None:
            parts.append((rollups["days", suffix], the_plan.days))
        for table, (start, end) in parts:
            found += _rows(
                await connection.execute(_summed(table, where, group_by, start, end, marks, dialect))
            )
        assert marks.hours is not None
        found += _rows(
            await connection.execute(_late(where, group_by, the_plan.rolled, marks.hours, dialect))
        )
        return found


async def watermarks(connection: AsyncConnection) -> Watermarks:
    state = activity_rollup_state
    row = (
        await connection.execute(select(state.c.hours_until, state.c.days_until).where(state.c.id == 1))
    ).first()
    if row is None:
        return Watermarks(None, None)
    hours, days = row
    return Watermarks(utc(hours) if hours is not None else None, utc(days) if days is not None else None)


def _is(column: Any, value: datetime | None) -> ColumnElement[bool]:
    found: ColumnElement[bool] = column.is_(None) if value is None else column == value
    return found


def _total(column: Any) -> Any:
    return func.coalesce(func.sum(column), 0)


def _hour_text(dialect: str, column: Any) -> Any:
    return time_bucket(By.HOUR, dialect, column)


def _generations_between(start: datetime, end: datetime, dialect: str) -> Any:
    """The generations made in ``[start, end)`` summed per hour, key, model and provider, with
    their adjustments written before ``end``."""
    g = generations.c
    adjusted = (
        select(_total(adjustments.c.amount_pico))
        .where(adjustments.c.generation_id == g.id, adjustments.c.created_at < end)
        .correlate(generations)
        .scalar_subquery()
    )
    hour = _hour_text(dialect, g.created_at)
    dimensions = (hour, g.key_id, g.model, g.provider_name)
    return (
        select(
            *dimensions,
            func.count(),
            _total(g.usage_pico + adjusted),
            _total(g.tokens_prompt),
            _total(g.tokens_completion),
            _total(g.native_tokens_reasoning),
            _total(g.native_tokens_cached),
            _total(case((g.finish_reason == "error", 1), else_=0)),
        )
        .where(g.created_at >= start, g.created_at < end)
        .group_by(*dimensions)
    )


def _adjustments_between(start: datetime, end: datetime, dialect: str) -> Any:
    """Adjustments written in ``[start, end)`` of generations made before ``start`` (those are
    rolled up already), summed per their generation's hour, key, model and provider."""
    g = generations.c
    hour = _hour_text(dialect, g.created_at)
    dimensions = (hour, g.key_id, g.model, g.provider_name)
    zero = literal(0)
    return (
        select(*dimensions, zero, _total(adjustments.c.amount_pico), zero, zero, zero, zero, zero)
        .select_from(adjustments.join(generations, g.id == adjustments.c.generation_id))
        .where(adjustments.c.created_at >= start, adjustments.c.created_at < end, g.created_at < start)
        .group_by(*dimensions)
    )


def _row(found: Any, through: datetime) -> dict[str, Any]:
    hour, key_id, model, provider, *sums = found
    start = datetime.strptime(hour, "%Y-%m-%dT%H:00:00Z").replace(tzinfo=UTC)
    return {
        "start": start,
        "key_id": key_id,
        "model": model,
        "provider_name": provider,
        **{name: int(value) for name, value in zip(_SUMS, sums, strict=True)},
        "through": through,
    }


def _project(rows: list[dict[str, Any]], dimensions: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of every dimension summed into rows of ``dimensions`` only (same start and through)."""
    summed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        group = (row["start"], row["through"], *(row[name] for name in dimensions))
        total = summed.get(group)
        if total is None:
            summed[group] = {
                "start": row["start"],
                "through": row["through"],
                **{name: row[name] for name in dimensions},
                **{name: row[name] for name in _SUMS},
            }
        else:
            for name in _SUMS:
                total[name] += row[name]
    return list(summed.values())


def _smallest(where: GenerationFilter, group_by: Sequence[Grouping]) -> str:
    """The suffix of the smallest rollup table with every dimension ``where`` and ``group_by`` use."""
    needed = {_BY_COLUMN[grouping.by] for grouping in group_by if grouping.by in _BY_COLUMN}
    needed |= {name for name in _BY_COLUMN.values() if getattr(where, name) is not None}
    return next(suffix for suffix, dimensions in _BY_SIZE if needed <= set(dimensions))


async def _next_active_day(connection: AsyncConnection, after: datetime, target: datetime) -> datetime:
    """The start of the first day from ``after`` on with a generation made or an adjustment
    written in it, ``after`` if that is its own day; ``target`` when there is none before it."""
    made = select(func.min(generations.c.created_at)).where(generations.c.created_at >= after)
    written = select(func.min(adjustments.c.created_at)).where(adjustments.c.created_at >= after)
    found = [
        utc(value)
        for value in (
            await connection.execute(select(made.scalar_subquery(), written.scalar_subquery()))
        ).one()
        if value is not None
    ]
    if not found:
        return target
    return max(after, min(target, floor_day(min(found))))


def _days_to_sum(marks: Watermarks, to: Watermarks, hour_rows: list[dict[str, Any]]) -> list[datetime]:
    """The days from ``marks.days`` up to ``to.days`` that have hours rolled up: the first (its
    earlier hours), and those of the new rows. A day with none has no row to sum."""
    if marks.days is None or to.days is None:
        return []
    wanted = {marks.days, *(floor_day(row["start"]) for row in hour_rows)}
    return sorted(day for day in wanted if marks.days <= day < to.days)


def _days_from_hours(suffix: str, day: datetime, through: datetime | None) -> Any:
    """The day's rows, summed from its hours' (all rolled up by now)."""
    hours, days = rollups["hours", suffix], rollups["days", suffix]
    names = ROLLUP_DIMENSIONS[suffix]
    dimensions = [hours.c[name] for name in names]
    summed = (
        select(
            literal(day, days.c.start.type),
            *dimensions,
            *(func.sum(hours.c[name]) for name in _SUMS),
            literal(through, days.c.through.type),
        )
        .where(hours.c.start >= day, hours.c.start < day + ONE_DAY)
        .group_by(*dimensions)
        .having(func.count() > 0)  # the total of an empty day: no row, not one of NULL sums
    )
    return insert(days).from_select(["start", *names, *_SUMS, "through"], summed)


def _filtered(table: Table, where: GenerationFilter) -> list[ColumnElement[bool]]:
    return [
        table.c[name] == getattr(where, name)
        for name in _BY_COLUMN.values()
        if getattr(where, name) is not None
    ]


def _groups(table: Table, group_by: Sequence[Grouping], dialect: str) -> list[Any]:
    return [
        time_bucket(grouping.by, dialect, table.c.start)
        if grouping.by in (By.DAY, By.HOUR)
        else table.c[_BY_COLUMN[grouping.by]]
        for grouping in group_by
    ]


def _summed(
    table: Table,
    where: GenerationFilter,
    group_by: Sequence[Grouping],
    start: datetime | None,
    end: datetime,
    marks: Watermarks,
    dialect: str,
) -> Any:
    groups = _groups(table, group_by, dialect)
    found = [table.c.start < end, table.c.through <= marks.hours, *_filtered(table, where)]
    if start is not None:
        found.append(table.c.start >= start)
    return select(*groups, *(_total(table.c[name]) for name in _SUMS)).where(*found).group_by(*groups)


def _late(
    where: GenerationFilter,
    group_by: Sequence[Grouping],
    rolled: tuple[datetime | None, datetime],
    written_since: datetime,
    dialect: str,
) -> Any:
    """Adjustments written since the watermark of generations in the rolled-up range."""
    start, end = rolled
    g = generations.c
    groups = [bucket(grouping, dialect) for grouping in group_by]
    # Few adjustments are that recent: walk them (their time index) and look each generation up
    # by id. Without statistics SQLite would walk the window's (or the key's) generations instead
    # (150-250 ms for 30 days at 1M rows); unary + keeps the generations' indexes out.
    made = not_indexed(g.created_at, dialect)
    filtered = [
        not_indexed(g[name], dialect) == getattr(where, name)
        for name in _BY_COLUMN.values()
        if getattr(where, name) is not None
    ]
    found = [adjustments.c.created_at >= written_since, made < end, *filtered]
    if start is not None:
        found.append(made >= start)
    zero = literal(0)
    return (
        select(*groups, zero, _total(adjustments.c.amount_pico), zero, zero, zero, zero, zero)
        .select_from(adjustments.join(generations, g.id == adjustments.c.generation_id))
        .where(*found)
        .group_by(*groups)
    )


def _rows(result: Any) -> list[ActivityRow]:
    rows = []
    for found in result:
        *group, requests, usage, prompt, completion, reasoning, cached, errors = found
        rows.append(
            ActivityRow(
                tuple(group),
                int(requests),
                int(usage),
                int(prompt),
                int(completion),
                int(reasoning),
                int(cached),
                int(errors),
            )
        )
    return rows
