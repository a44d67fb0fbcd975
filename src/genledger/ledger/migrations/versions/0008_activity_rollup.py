"""The activity rollup: sums per hour and per day x key x model x provider, and its watermarks.

Filled lazily by the first read of activity (``ledger/rollup.py``), not here: a migration that
scanned a big ledger would hold every instance's start-up for minutes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _rollup(name: str) -> None:
    op.create_table(
        name,
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider_name", sa.String(200), nullable=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("usage_pico", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("through", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(f"ix_{name}_start", name, ["start"])


def upgrade() -> None:
    _rollup("activity_hours")
    _rollup("activity_days")
    state = op.create_table(
        "activity_rollup_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hours_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("days_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.bulk_insert(state, [{"id": 1, "hours_until": None, "days_until": None}])


def downgrade() -> None:
    op.drop_table("activity_rollup_state")
    op.drop_table("activity_days")
    op.drop_table("activity_hours")
