"""What a generation (or a rollup row) has for a grouping, as SQL text both databases agree on.

Days and hours are UTC buckets rendered by the database (``to_char`` of ``date_trunc`` on
PostgreSQL, ``strftime`` on SQLite), so both group and answer alike, and the rollup's buckets
(``rollup.py``) read exactly like the generations' own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from genledger.core.activity import By, Grouping
from genledger.ledger.hints import not_indexed
from genledger.ledger.schema import generations

_COLUMNS = {
    By.MODEL: generations.c.model,
    By.PROVIDER: generations.c.provider_name,
    By.KEY: generations.c.key_id,
    By.USER: generations.c.external_user,
    By.SESSION: generations.c.session_id,
}
_PG_FORMATS = {By.DAY: ("day", "YYYY-MM-DD"), By.HOUR: ("hour", 'YYYY-MM-DD"T"HH24:00:00"Z"')}
_SQLITE_FORMATS = {By.DAY: "%Y-%m-%d", By.HOUR: "%Y-%m-%dT%H:00:00Z"}


def time_bucket(by: By, dialect: str, moment: Any) -> ColumnElement[Any]:
    """The UTC day or hour holding ``moment`` (a column), as text: ``2026-11-27`` or
    ``2026-11-27T13:00:00Z``."""
    if dialect == "postgresql":
        unit, pattern = _PG_FORMATS[by]
        return func.to_char(func.date_trunc(unit, func.timezone("UTC", moment)), pattern)
    # SQLite keeps UTC times as ISO text, which strftime reads.
    return func.strftime(_SQLITE_FORMATS[by], moment)


def bucket(grouping: Grouping, dialect: str, *, windowed: bool = False) -> ColumnElement[Any]:
    """The value a generation has for ``grouping``, as text (or NULL).

    ``windowed``: the rows are read through a time window. SQLite, which plans without
    statistics, would then group by key by walking the whole key index (every generation, 843
    ms at 1M rows) rather than the window's rows (86 ms); a unary ``+`` keeps the index out.
    """
    if grouping.by in (By.DAY, By.HOUR):
        return time_bucket(grouping.by, dialect, generations.c.created_at)
    if grouping.by is By.METADATA:
        key = grouping.metadata_key
        if dialect == "postgresql":
            text: ColumnElement[Any] = type_coerce(generations.c.metadata, JSONB)[key].astext  # ->>
            return text
        pairs = func.json_each(generations.c.metadata).table_valued("key", "value")
        # json_each, not json_extract: any key works, with no path syntax to escape.
        return select(pairs.c.value).where(pairs.c.key == key).scalar_subquery()
    column = _COLUMNS[grouping.by]
    if grouping.by is By.KEY and windowed:
        return not_indexed(column, dialect)
    return column
