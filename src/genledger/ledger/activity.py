"""Activity in SQL: generations summed per group, exactly, on both databases.

Every sum is a SQL ``SUM`` of integer columns (picodollars and tokens), so a group's usage is
exactly the sum of its generations' charges and adjustments. Closed hours and days come from the
rollup (``rollup.py``) where it can answer; the rest of a window from the generations, and the
parts are added up per group. Days and hours are UTC buckets (``buckets.py``). Latency
percentiles are ``percentile_cont`` on PostgreSQL; SQLite has none, so its window functions
rank each group's latencies and only the (at most
two) ranks each percentile interpolates between are read back: memory stays bounded by the
number of groups, never by the number of generations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    Integer,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from genledger.core.activity import (
    PERCENTILES,
    ActivityRow,
    ActivityRows,
    By,
    Grouping,
    group_order,
    interpolate,
)
from genledger.core.stores import GenerationFilter
from genledger.ledger.buckets import bucket
from genledger.ledger.filters import conditions
from genledger.ledger.rollup import ActivityRollup, Watermarks, answers, plan
from genledger.ledger.schema import adjustments, generations

log = logging.getLogger("genledger.ledger")
_SUMMED = {
    "usage": generations.c.usage_pico,
    "prompt": generations.c.tokens_prompt,
    "completion": generations.c.tokens_completion,
    "reasoning": generations.c.native_tokens_reasoning,
    "cached": generations.c.native_tokens_cached,
}


READ_STEPS = 2


def _total(column: Any) -> Any:
    return func.coalesce(func.sum(column), 0)


async def activity(
    engine: AsyncEngine,
    where: GenerationFilter,
    group_by: Sequence[Grouping],
    *,
    latency: bool,
    newest: int | None = None,
    rollup: ActivityRollup | None = None,
) -> ActivityRows:
    """The sums of ``GenerationStore.activity``: from the rollup's closed hours and days where
    it can answer (no latency, no sample, only its dimensions), and from the generations for
    the rest of the window (its edges, and the hour or so since the rollup's watermark)."""
    if rollup is not None and newest is None and not latency and answers(where, group_by):
        try:
            # A few steps (an hour or a day has closed since the last read), never a wait on
            # another read's: the generations answer for what is not rolled up yet.
            marks = await rollup.catch_up(max_steps=READ_STEPS, wait=False)
        except SQLAlchemyError:
            # The rollup is an optimisation: a read never fails for it (say, SQLite's write lock
            # held past its busy timeout while a step waited); the generations answer alone.
            log.warning("activity rollup: catching up failed; reading the generations", exc_info=True)
            marks = Watermarks(None, None)
        split = plan(where, marks, hourly=any(grouping.by is By.HOUR for grouping in group_by))
        if split is not None:
            async with engine.connect() as connection:
                found = await rollup.sums(connection, where, group_by, split, marks)
                for start, end in split.raw:
                    edge = replace(where, created_after=start, created_before=end)
                    found += await _raw(connection, edge, group_by, latency=False, newest=None)
            return merged(found)
    async with engine.connect() as connection:
        return await _raw(connection, where, group_by, latency=latency, newest=newest)


def merged(rows: Sequence[ActivityRow]) -> ActivityRows:
    """Rows of the same group added up (parts of one window), in group order."""
    sums: dict[tuple[str | None, ...], list[int]] = {}
    for row in rows:
        total = sums.setdefault(row.group, [0] * 7)
        for i, amount in enumerate(
            (
                row.requests,
                row.usage_pico,
                row.prompt_tokens,
                row.completion_tokens,
                row.reasoning_tokens,
                row.cached_tokens,
                row.errors,
            )
        ):
            total[i] += amount
    return sorted(
        (ActivityRow(group, *totals) for group, totals in sums.items() if totals[0] > 0),
        key=lambda r: group_order(r.group),
    )


async def _raw(
    connection: AsyncConnection,
    where: GenerationFilter,
    group_by: Sequence[Grouping],
    *,
    latency: bool,
    newest: int | None,
) -> ActivityRows:
    """The sums read from the generations themselves (and their adjustments); with ``newest``,
    from the newest ``newest`` matching generations only."""
    dialect = connection.dialect.name
    # A generation's usage is its charge plus its adjustments (corrections are entries).
    adjusted = (
        select(adjustments.c.generation_id, func.sum(adjustments.c.amount_pico).label("amount"))
        .group_by(adjustments.c.generation_id)
        .subquery("adjusted")
    )
    summed = {**_SUMMED, "usage": generations.c.usage_pico + func.coalesce(adjusted.c.amount, 0)}
    windowed = where.created_after is not None and where.key_id is None
    matching_query = (
        select(
            *(
                bucket(grouping, dialect, windowed=windowed).label(f"g{i}")
                for i, grouping in enumerate(group_by)
            ),
            *(column.label(name) for name, column in summed.items()),
            generations.c.finish_reason,
            generations.c.latency_ms,
        )
        .select_from(generations.outerjoin(adjusted, adjusted.c.generation_id == generations.c.id))
        .where(*conditions(where, dialect))
    )
    if newest is not None:
        matching_query = matching_query.order_by(
            generations.c.created_at.desc(), generations.c.id.desc()
        ).limit(newest)
    matching = matching_query.subquery("matching")
    groups = [matching.c[f"g{i}"] for i in range(len(group_by))]
    sums = [
        func.count(),
        *(_total(matching.c[name]) for name in _SUMMED),
        _total(case((matching.c.finish_reason == "error", 1), else_=0)),
    ]
    postgres_percentiles = latency and dialect == "postgresql"
    if postgres_percentiles:
        sums += [func.percentile_cont(p).within_group(matching.c.latency_ms) for p in PERCENTILES]
    query = select(*groups, *sums).group_by(*groups)
    found = (await connection.execute(query)).all()
    percentiles = (
        await _ranked_percentiles(connection, matching, len(group_by))
        if latency and not postgres_percentiles
        else {}
    )
    width = len(group_by)
    rows = []
    for row in found:
        group = tuple(row[:width])
        requests, usage, prompt, completion, reasoning, cached, errors = (
            int(v) for v in row[width : width + 7]
        )
        if requests == 0:
            continue  # no groups and nothing matched: SQL's one row of an empty aggregate
        if postgres_percentiles:
            p50, p95 = row[width + 7], row[width + 8]
        else:
            p50, p95 = percentiles.get(group, (None, None))
        rows.append(
            ActivityRow(group, requests, usage, prompt, completion, reasoning, cached, errors, p50, p95)
        )
    return sorted(rows, key=lambda r: group_order(r.group))


async def _ranked_percentiles(
    connection: Any, matching: Subquery, width: int
) -> dict[tuple[Any, ...], tuple[float | None, float | None]]:
    """Each group's latency percentiles, from the few ranks they interpolate between."""
    groups = [matching.c[f"g{i}"] for i in range(width)]
    partition = groups or [literal(0)]
    ranked = (
        select(
            *groups,
            matching.c.latency_ms,
            (func.row_number().over(partition_by=partition, order_by=matching.c.latency_ms) - 1).label(
                "rank"
            ),
            func.count().over(partition_by=partition).label("n"),
        )
        .where(matching.c.latency_ms.is_not(None))
        .subquery("ranked")
    )
    wanted = []
    for p in PERCENTILES:
        # The floor of p * (n - 1) (a cast truncates, and the value is never negative) and the next
        # rank; ranks() then picks the one or two of them percentile_cont interpolates between.
        floor = cast(p * (ranked.c.n - 1), Integer)
        wanted.append(and_(ranked.c.rank >= floor, ranked.c.rank <= floor + 1))
    query = select(*(ranked.c[f"g{i}"] for i in range(width)), ranked.c.n, ranked.c.rank, ranked.c.latency_ms)
    values: dict[tuple[Any, ...], dict[int, float]] = {}
    counts: dict[tuple[Any, ...], int] = {}
    for row in await connection.execute(query.where(or_(*wanted))):
        group = tuple(row[:width])
        counts[group] = row[width]
        values.setdefault(group, {})[row[width + 1]] = row[width + 2]
    result: dict[tuple[Any, ...], tuple[float | None, float | None]] = {}
    for group, count in counts.items():
        at = values[group]
        p50, p95 = (interpolate(p, count, at.__getitem__) for p in PERCENTILES)
        result[group] = (p50, p95)
    return result
