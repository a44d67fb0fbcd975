"""A :class:`~genledger.core.stores.GenerationFilter` as SQL conditions, per database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from genledger.core.stores import GenerationFilter
from genledger.ledger.schema import generations

_NOT_INDEXED: custom_op[Any] = custom_op("+")
_EQUAL = ("model", "provider_name", "finish_reason", "streamed", "cancelled", "external_user", "session_id")


def _metadata_pair(dialect: str, key: str, value: str) -> ColumnElement[bool]:
    column = generations.c.metadata
    if dialect == "postgresql":
        return type_coerce(column, JSONB).contains({key: value})  # @>, served by the GIN index
    pairs = func.json_each(column).table_valued("key", "value")
    return exists(select(literal(1)).select_from(pairs).where(pairs.c.key == key, pairs.c.value == value))


def conditions(where: GenerationFilter, dialect: str) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``where`` on the generations table."""
    found: list[ColumnElement[bool]] = []
    if where.key_id is not None:
        key_id: ColumnElement[Any] = generations.c.key_id
        if dialect == "sqlite" and (where.session_id is not None or where.external_user is not None):
            # SQLite plans without statistics (nothing runs ANALYZE on a ledger) and would walk
            # the key's whole history, filtering for one session or user, rather than that
            # session's or user's own few index entries. A unary + keeps the key's index out.
            key_id = UnaryExpression(key_id, operator=_NOT_INDEXED, type_=generations.c.key_id.type)
        found.append(key_id == where.key_id)
    if where.created_after is not None:
        found.append(generations.c.created_at >= where.created_after)
    if where.created_before is not None:
        found.append(generations.c.created_at < where.created_before)
    for name in _EQUAL:
        value: Any = getattr(where, name)
        if value is not None:
            found.append(generations.c[name] == value)
    if where.min_cost_pico is not None:
        found.append(generations.c.total_cost_pico >= where.min_cost_pico)
    found.extend(_metadata_pair(dialect, key, value) for key, value in where.metadata)
    return found


def everything(where: GenerationFilter, dialect: str) -> ColumnElement[bool]:
    return and_(True, *conditions(where, dialect))
