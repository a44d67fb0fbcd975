"""Credit reservations, limit periods and per-key rate limits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("reserved_pico", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("period_usage_pico", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("period_start", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("requests_per_minute", sa.Integer, nullable=True))
        batch.add_column(sa.Column("tokens_per_minute", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for column in (
            "tokens_per_minute",
            "requests_per_minute",
            "period_start",
            "period_usage_pico",
            "reserved_pico",
        ):
            batch.drop_column(column)
