"""Activity in SQL: generations summed per group, exactly, in one query per database.

Every sum is a SQL ``SUM`` of integer columns (picodollars and tokens), so a group's usage is
exactly the sum of its generations' charges. Days and hours are UTC buckets rendered as text
by the database (``to_char`` of ``date_trunc`` on PostgreSQL, ``strftime`` on SQLite), so both
databases group and answer alike. Latency percentiles are ``percentile_cont`` on PostgreSQL;
SQLite has none, so its window functions rank each group's latencies and only the (at most
two) ranks each percentile interpolates between are read back: memory stays bounded by the
number of groups, never by the number of generations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.core.activity import PERCENTILES, ActivityRow, By, Grouping, group_order, interpolate
from genledger.core.stores import GenerationFilter
from genledger.ledger.filters import conditions
from genledger.ledger.schema import adjustments, generations

_COLUMNS = {
    By.MODEL: generations.c.model,
    By.PROVIDER: generations.c.provider_name,
    By.KEY: generations.c.key_id,
    By.USER: generations.c.external_user,
    By.SESSION: generations.c.session_id,
}
_SUMMED = {
    "usage": generations.c.usage_pico,
    "prompt": generations.c.tokens_prompt,
    "completion": generations.c.tokens_completion,
    "reasoning": generations.c.native_tokens_reasoning,
    "cached": generations.c.native_tokens_cached,
}
_PG_FORMATS = {By.DAY: ("day", "YYYY-MM-DD"), By.HOUR: ("hour", 'YYYY-MM-DD"T"HH24:00:00"Z"')}
_SQLITE_FORMATS = {By.DAY: "%Y-%m-%d", By.HOUR: "%Y-%m-%dT%H:00:00Z"}


def bucket(grouping: Grouping, dialect: str) -> ColumnElement[Any]:
    """The value a generation has for ``grouping``, as text (or NULL)."""
    created_at = generations.c.created_at
    if grouping.by in (By.DAY, By.HOUR):
        if dialect == "postgresql":
            unit, pattern = _PG_FORMATS[grouping.by]
            return func.to_char(func.date_trunc(unit, func.timezone("UTC", created_at)), pattern)
        # SQLite keeps UTC times as ISO text, which strftime reads.
        return func.strftime(_SQLITE_FORMATS[grouping.by], created_at)
    if grouping.by is By.METADATA:
        key = grouping.metadata_key
        if dialect == "postgresql":
            text: ColumnElement[Any] = type_coerce(generations.c.metadata, JSONB)[key].astext  # ->>
            return text
        pairs = func.json_each(generations.c.metadata).table_valued("key", "value")
        # json_each, not json_extract: any key works, with no path syntax to escape.
        return select(pairs.c.value).where(pairs.c.key == key).scalar_subquery()
    return _COLUMNS[grouping.by]


def _total(column: Any) -> ColumnElement[Any]:
    return func.coalesce(func.sum(column), 0)


async def activity(
    engine: AsyncEngine, where: GenerationFilter, group_by: Sequence[Grouping], *, latency: bool
) -> list[ActivityRow]:
    dialect = engine.dialect.name
    # A generation's usage is its charge plus its adjustments (corrections are entries).
    adjusted = (
        select(adjustments.c.generation_id, func.sum(adjustments.c.amount_pico).label("amount"))
        .group_by(adjustments.c.generation_id)
        .subquery("adjusted")
    )
    summed = {**_SUMMED, "usage": generations.c.usage_pico + func.coalesce(adjusted.c.amount, 0)}
    matching = (
        select(
            *(bucket(grouping, dialect).label(f"g{i}") for i, grouping in enumerate(group_by)),
            *(column.label(name) for name, column in summed.items()),
            generations.c.finish_reason,
            generations.c.latency_ms,
        )
        .select_from(generations.outerjoin(adjusted, adjusted.c.generation_id == generations.c.id))
        .where(*conditions(where, dialect))
        .subquery("matching")
    )
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
    async with engine.connect() as connection:
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
