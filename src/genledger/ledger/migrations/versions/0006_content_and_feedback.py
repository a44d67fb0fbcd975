"""Stored generation content and feedback, and a key's own content-storage switch.

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("store_content", sa.Boolean(), nullable=True))
    op.create_table(
        "generation_content",
        sa.Column("generation_id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_generation_content_created", "generation_content", ["created_at"])
    op.create_table(
        "generation_feedback",
        sa.Column("generation_id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("comment", sa.String(2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("generation_feedback")
    op.drop_index("ix_generation_content_created", table_name="generation_content")
    op.drop_table("generation_content")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("store_content")
