"""The activity rollup: sums per hour and per day x key x model x provider (and x model x
provider, x key, and in total), and its watermarks.

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


_DIMENSIONS = {
    "": ("key_id", "model", "provider_name"),
    "_by_model": ("model", "provider_name"),
    "_by_key": ("key_id",),
    "_total": (),
}
_SUMS = (
    "requests",
    "usage_pico",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "errors",
)
_COLUMNS = {
    "key_id": lambda: sa.Column("key_id", sa.String(36), nullable=False),
    "model": lambda: sa.Column("model", sa.String(200), nullable=False),
    "provider_name": lambda: sa.Column("provider_name", sa.String(200), nullable=True),
}


def _names() -> list[tuple[str, tuple[str, ...]]]:
    return [
        (f"activity_{period}{suffix}", dimensions)
        for period in ("hours", "days")
        for suffix, dimensions in _DIMENSIONS.items()
    ]


def _rollup(name: str, dimensions: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        *(_COLUMNS[dimension]() for dimension in dimensions),
        *(sa.Column(column, sa.BigInteger, nullable=False) for column in _SUMS),
        sa.Column("through", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(f"ix_{name}_start", name, ["start"])


def upgrade() -> None:
    for name, dimensions in _names():
        _rollup(name, dimensions)
    state = op.create_table(
        "activity_rollup_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hours_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("days_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.bulk_insert(state, [{"id": 1, "hours_until": None, "days_until": None}])


def downgrade() -> None:
    op.drop_table("activity_rollup_state")
    for name, _ in _names():
        op.drop_table(name)
