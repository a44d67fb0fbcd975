"""A key keeps OpenRouter's ``include_byok_in_limit`` as it was set, and reads it back.

genledger has no bring-your-own-key usage, so the flag changes no limit; it was accepted and
read back false, which a client that set it true could only take for a lost write. Existing
keys read false, as they did.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("include_byok_in_limit", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("include_byok_in_limit")
