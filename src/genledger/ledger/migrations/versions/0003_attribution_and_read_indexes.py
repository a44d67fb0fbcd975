"""Attribution (session and metadata) on generations, and the indexes the read side uses.

The list walks newest first by ``(created_at, id)``, overall or for one key, optionally
narrowed by model, session or user; activity sums a key's or everyone's days. Each of those
has an index that returns its first page without scanning; metadata filters use a GIN index
on PostgreSQL (containment) and an expression-free scan within the time range on SQLite.

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
    op.create_index("ix_generations_model_created", "generations", ["model", "created_at"])
    op.create_index("ix_generations_session_created", "generations", ["session_id", "created_at"])
    op.create_index("ix_generations_user_created", "generations", ["external_user", "created_at"])
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
        "ix_generations_model_created",
        "ix_generations_created",
        "ix_generations_key_created",
    ):
        op.drop_index(name, table_name="generations")
    op.create_index("ix_generations_key_created", "generations", ["key_id", "created_at"])
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("metadata")
        batch.drop_column("session_id")
