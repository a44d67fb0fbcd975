"""A :class:`~genledger.core.stores.GenerationFilter` as SQL conditions, per database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal_column, not_, select

from genledger.core.stores import GenerationFilter
from genledger.ledger.hints import not_indexed
from genledger.ledger.schema import generation_metadata, generations

_EQUAL = ("model", "provider_name", "streamed", "external_user", "session_id")
# Values with partial indexes (schema.RARE). Neither database uses a partial index for a bound
# parameter in every plan (PostgreSQL's generic plans do not), so these are written as literals.
_RARE_FINISH_REASON = "error"


def has_pair(key: str, value: str) -> ColumnElement[bool]:
    """The generation has ``key: value`` in its metadata: a primary key probe of its pairs."""
    pairs = generation_metadata.alias("pair")  # apart from a walk of the table itself
    return exists(
        select(pairs.c.generation_id)
        .where(
            pairs.c.key == key,
            pairs.c.value == value,
            pairs.c.created_at == generations.c.created_at,
            pairs.c.generation_id == generations.c.id,
        )
        .correlate(generations)
    )


def conditions(where: GenerationFilter, dialect: str) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``where`` on the generations table."""
    found: list[ColumnElement[bool]] = []
    if where.key_id is not None:
        key_id: ColumnElement[Any] = generations.c.key_id
        if where.session_id is not None or where.external_user is not None:
            # SQLite would walk the key's whole history, filtering for one session or user,
            # rather than that session's or user's own few index entries.
            key_id = not_indexed(key_id, dialect)
        found.append(key_id == where.key_id)
    if where.created_after is not None:
        found.append(generations.c.created_at >= where.created_after)
    if where.created_before is not None:
        found.append(generations.c.created_at < where.created_before)
    found.extend(rare_values(where))
    for name in _EQUAL:
        value: Any = getattr(where, name)
        if value is not None:
            found.append(generations.c[name] == value)
    if where.min_cost_pico is not None:
        found.append(generations.c.total_cost_pico >= where.min_cost_pico)
    found.extend(has_pair(key, value) for key, value in where.metadata)
    if where.drifted is not None:
        # No index: drift is rare, and an index of it would cost every upstream-costed insert.
        upstream, ours = generations.c.upstream_cost_pico, generations.c.total_cost_pico
        beyond = and_(upstream.is_not(None), func.abs(upstream - ours) > where.drift_tolerance_pico)
        found.append(beyond if where.drifted else not_(beyond))
    return found


def rare_values(where: GenerationFilter) -> list[ColumnElement[bool]]:
    """``finish_reason`` and ``cancelled``: the rare values as literals, for their partial indexes."""
    found: list[ColumnElement[bool]] = []
    if where.finish_reason == _RARE_FINISH_REASON:
        found.append(generations.c.finish_reason == literal_column(f"'{_RARE_FINISH_REASON}'"))
    elif where.finish_reason is not None:
        found.append(generations.c.finish_reason == where.finish_reason)
    if where.cancelled is True:
        found.append(generations.c.cancelled)  # "cancelled" / "cancelled = 1": the indexes' own
    elif where.cancelled is False:
        found.append(generations.c.cancelled == False)  # noqa: E712 (a bound False, as before)
    return found


def everything(where: GenerationFilter, dialect: str) -> ColumnElement[bool]:
    return and_(True, *conditions(where, dialect))
