"""Partial indexes for the rare values, and metadata pairs in a table of their own.

A list filtered by ``finish_reason=error`` or ``cancelled=true`` walked the time index and
dropped 50-125 rows per row kept; a metadata filter did the same and read each row's JSON.
Partial indexes hold only the rare rows, and ``generation_metadata`` only the pairs of the
generations that have metadata, so the common insert writes nothing more than before. The
GIN index on PostgreSQL's ``metadata`` column is dropped: the pairs' table serves the filter
(bench/README.md).

Existing generations' pairs are copied in, from the JSON column.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# name -> (SQLite predicate, PostgreSQL predicate), as schema.RARE (a migration keeps its own copy).
_RARE = {
    "errors": ("finish_reason = 'error'", "finish_reason = 'error'"),
    "cancelled": ("cancelled = 1", "cancelled"),
}
_COPY_PAIRS = {
    "sqlite": (
        "INSERT INTO generation_metadata (key, value, created_at, generation_id, key_id) "
        "SELECT pair.key, pair.value, g.created_at, g.id, g.key_id "
        "FROM generations AS g, json_each(g.metadata) AS pair WHERE g.metadata IS NOT NULL"
    ),
    "postgresql": (
        "INSERT INTO generation_metadata (key, value, created_at, generation_id, key_id) "
        "SELECT pair.key, pair.value, g.created_at, g.id, g.key_id "
        "FROM generations AS g, jsonb_each_text(g.metadata) AS pair "
        "WHERE g.metadata IS NOT NULL AND jsonb_typeof(g.metadata) = 'object'"
    ),
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "generation_metadata",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(512), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("generation_id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sqlite_with_rowid=False,
    )
    op.execute(_COPY_PAIRS[dialect])
    for name, (sqlite, postgres) in _RARE.items():
        for scope, columns in (("", ["created_at", "id"]), ("_key", ["key_id", "created_at", "id"])):
            op.create_index(
                f"ix_generations{scope}_{name}",
                "generations",
                columns,
                sqlite_where=sa.text(sqlite),
                postgresql_where=sa.text(postgres),
            )
    if dialect == "postgresql":
        op.drop_index("ix_generations_metadata", table_name="generations")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_generations_metadata",
            "generations",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )
    for name in _RARE:
        for scope in ("", "_key"):
            op.drop_index(f"ix_generations{scope}_{name}", table_name="generations")
    op.drop_table("generation_metadata")
