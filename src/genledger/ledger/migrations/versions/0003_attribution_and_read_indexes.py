"""Attribution (session and metadata) on generations, and the indexes the read side uses.

The list walks newest first by ``(created_at, id)``, overall or for one key, optionally
narrowed by a session or a user (partial indexes: rows without one cost nothing to write);
activity sums a key's or everyone's days. Other filters (model, provider, finish reason, ...)
walk the time index; metadata filters use a GIN index on PostgreSQL (containment). Every index
is paid for on the hot write path, so only these are kept (bench/README.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("session_id", sa.String(256), nullable=True))
        batch.add_column(sa.Column("metadata", metadata_type, nullable=True))
    op.drop_index("ix_generations_key_created", table_name="generations")
    op.create_index("ix_generations_key_created", "generations", ["key_id", "created_at", "id"])
    op.create_index("ix_generations_created", "generations", ["created_at", "id"])
    for name, column in (("session", "session_id"), ("user", "external_user")):
        present = sa.text(f"{column} IS NOT NULL")  # partial: rows without one pay nothing
        op.create_index(
            f"ix_generations_{name}_created",
            "generations",
            [column, "created_at"],
            sqlite_where=present,
            postgresql_where=present,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_generations_metadata",
            "generations",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_generations_metadata", table_name="generations")
    for name in (
        "ix_generations_user_created",
        "ix_generations_session_created",
        "ix_generations_created",
        "ix_generations_key_created",
    ):
        op.drop_index(name, table_name="generations")
    op.create_index("ix_generations_key_created", "generations", ["key_id", "created_at"])
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("metadata")
        batch.drop_column("session_id")
