"""Ledger truth: price versions, adjustment entries, sealed statements, upstream cost, and
the claims of idempotent retries.

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("price_version", sa.Integer, nullable=True))
        batch.add_column(sa.Column("upstream_cost_pico", sa.BigInteger, nullable=True))
    op.create_table(
        "price_versions",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prices", sa.JSON, nullable=False),
    )
    op.create_table(
        "adjustments",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("generation_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("generation_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_pico", sa.BigInteger, nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_adjustments_generation", "adjustments", ["generation_id"])
    op.create_index("ix_adjustments_created", "adjustments", ["created_at"])
    op.create_table(
        "statements",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_count", sa.Integer, nullable=False),
        sa.Column("totals", sa.JSON, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "statement_entries",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("entry_id", sa.String(120), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("media_type", sa.String(100), nullable=True),
        sa.Column("body", sa.LargeBinary, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("statement_entries")
    op.drop_table("statements")
    op.drop_index("ix_adjustments_created", table_name="adjustments")
    op.drop_index("ix_adjustments_generation", table_name="adjustments")
    op.drop_table("adjustments")
    op.drop_table("price_versions")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("upstream_cost_pico")
        batch.drop_column("price_version")
