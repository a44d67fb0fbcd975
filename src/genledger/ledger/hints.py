"""Hints for SQLite's query planner, which plans without statistics (nothing runs ANALYZE on a
live ledger) and so sometimes walks the wrong index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

_PLUS: custom_op[Any] = custom_op("+")


def not_indexed(column: Any, dialect: str) -> ColumnElement[Any]:
    """``column`` as SQLite's ``+column``: the same value, but no index of it is used for the
    term. Other databases get the column as it is (PostgreSQL has no unary plus for most types,
    and its statistics choose well)."""
    if dialect != "sqlite":
        found: ColumnElement[Any] = column
        return found
    return UnaryExpression(column, operator=_PLUS, type_=column.type)
