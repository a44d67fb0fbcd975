"""Terms written per database: hints for SQLite's query planner, which plans without statistics
(nothing runs ANALYZE on a live ledger) and so sometimes walks the wrong index; and a set of
values as one PostgreSQL array."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
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


def one_of(column: Any, values: Sequence[str], dialect: str) -> ColumnElement[bool]:
    """``column IN values``. On PostgreSQL one array parameter (``= ANY($1)``): an ``IN`` list
    is rendered again, a cast per value, each time it runs (a hundred ids: a tenth of a list
    page's time); SQLite, which has no arrays, gets the list."""
    found: ColumnElement[bool]
    if dialect == "postgresql":
        found = column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    else:
        found = column.in_(list(values))
    return found
