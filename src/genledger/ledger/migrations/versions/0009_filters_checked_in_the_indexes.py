"""The read indexes end with a column their pages filter on, so the filter is checked in the
index and only matching rows are read from the table.

- The session and user indexes end with ``key_id``. An ordinary key's list with
  ``external_user`` walked the user's entries and read every one of the user's rows from the
  table to compare its key: a user of 3,800 rows in a 10M ledger, 22% of them the key's, cost
  300 table reads a page, and 144 ms under the generic plan PostgreSQL caches for a prepared
  statement (a bitmap scan of all the user's rows, then a sort). With the key in the index
  the comparison is an index condition: 0.5 ms.
- On PostgreSQL, the key and time indexes end with ``model``. A model has no index of its own (it is not
  selective, and every index costs each insert): its page walks the key's or everyone's
  entries newest first, and read each row from the table to compare the model. A rare model
  of the busiest key: 0.5 ms now; a model the key never used walks the key's entries alone,
  195 ms at 10M rows, where PostgreSQL, expecting no row, scanned the whole table (2.3 s).
  (SQLite keeps them as they were: it compares no column in an index it walks, and the wider
  index made its planner, which has no statistics, prefer it to the partial error and
  cancelled indexes.)

The order stays the leading columns', so every other page walks them as before. Rebuilds four
indexes on PostgreSQL, two on SQLite: tens of seconds per 10M rows, with writes held.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# name: (the columns before, the column added, a partial index's predicate, PostgreSQL only)
_INDEXES = {
    "ix_generations_key_created": (["key_id", "created_at", "id"], "model", None, True),
    "ix_generations_created": (["created_at", "id"], "model", None, True),
    "ix_generations_session_created": (
        ["session_id", "created_at"],
        "key_id",
        "session_id IS NOT NULL",
        False,
    ),
    "ix_generations_user_created": (
        ["external_user", "created_at"],
        "key_id",
        "external_user IS NOT NULL",
        False,
    ),
}


def _rebuild(*, added: bool) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, (columns, column, where, postgres_only) in _INDEXES.items():
        if postgres_only and not postgres:
            continue
        op.drop_index(name, table_name="generations")
        predicate = None if where is None else sa.text(where)
        op.create_index(
            name,
            "generations",
            [*columns, *([column] if added else [])],
            sqlite_where=predicate,
            postgresql_where=predicate,
        )


PAIRS_BY_KEY = "ix_generation_metadata_key"


def upgrade() -> None:
    _rebuild(added=True)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            PAIRS_BY_KEY, "generation_metadata", ["key", "value", "key_id", "created_at", "generation_id"]
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(PAIRS_BY_KEY, table_name="generation_metadata")
    _rebuild(added=False)
