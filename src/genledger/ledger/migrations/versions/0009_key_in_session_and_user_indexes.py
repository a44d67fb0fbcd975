"""The session and user indexes end with ``key_id``: one key's page of a busy user is read
from the index alone.

An ordinary key's list with ``external_user`` (or ``session_id``) walked the user's index
entries and visited every one of the user's rows in the table to compare its key: a user of
3,800 rows in a 10M ledger, 22% of them the key's, cost 300 table visits a page, and 144 ms under
the generic plan PostgreSQL caches for a prepared statement (a bitmap scan of all the user's
rows, then a sort). With the key in the index the comparison is an index condition: 0.5 ms.
The order stays ``created_at``'s, so a management key's page (no key) walks it as before.

Rebuilds two indexes: on a big PostgreSQL ledger, some seconds per 10M rows with writes held.

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

_INDEXES = {
    "ix_generations_session_created": "session_id",
    "ix_generations_user_created": "external_user",
}


def _rebuild(with_key: bool) -> None:
    for name, column in _INDEXES.items():
        op.drop_index(name, table_name="generations")
        where = sa.text(f"{column} IS NOT NULL")
        columns = [column, "created_at", *(["key_id"] if with_key else [])]
        op.create_index(name, "generations", columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    _rebuild(with_key=True)


def downgrade() -> None:
    _rebuild(with_key=False)
