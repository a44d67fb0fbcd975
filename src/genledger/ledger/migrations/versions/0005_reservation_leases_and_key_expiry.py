"""Reservations with an owner and a lease; keys that expire.

Each reservation of a key's credit becomes a row (``reservations``): the generation's id, the
key, the amount, the gateway instance holding it and when its lease runs out. The instance
renews its leases while it lives; an expired lease means the instance died (``kill -9``, power
loss), and any instance gives that credit back. ``api_keys.reserved_pico`` stays the sum of the
key's rows, so the admission check is still one conditional UPDATE.

Reservations made before this revision have no row and could never be settled by one: they are
zeroed (upgrade with every instance stopped, as migrations run at start-up).

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE api_keys SET reserved_pico = 0")
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("amount_pico", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reservations_owner", "reservations", ["owner"])
    op.create_index("ix_reservations_lease", "reservations", ["lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_reservations_lease", table_name="reservations")
    op.drop_index("ix_reservations_owner", table_name="reservations")
    op.drop_table("reservations")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
