"""Keys and generations.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("is_management", sa.Boolean, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("limit_pico", sa.BigInteger, nullable=True),
        sa.Column("limit_reset", sa.String(16), nullable=True),
        sa.Column("usage_pico", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "generations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("api_type", sa.String(32), nullable=True),
        sa.Column("upstream_id", sa.String(200), nullable=True),
        sa.Column("provider_name", sa.String(200), nullable=True),
        sa.Column("total_cost_pico", sa.BigInteger, nullable=False),
        sa.Column("cache_discount_pico", sa.BigInteger, nullable=True),
        sa.Column("usage_pico", sa.BigInteger, nullable=False),
        sa.Column("streamed", sa.Boolean, nullable=True),
        sa.Column("cancelled", sa.Boolean, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("generation_time_ms", sa.Float, nullable=True),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("native_finish_reason", sa.String(64), nullable=True),
        sa.Column("tokens_prompt", sa.Integer, nullable=True),
        sa.Column("tokens_completion", sa.Integer, nullable=True),
        sa.Column("native_tokens_prompt", sa.Integer, nullable=True),
        sa.Column("native_tokens_completion", sa.Integer, nullable=True),
        sa.Column("native_tokens_reasoning", sa.Integer, nullable=True),
        sa.Column("native_tokens_cached", sa.Integer, nullable=True),
        sa.Column("native_tokens_cache_write", sa.Integer, nullable=True),
        sa.Column("native_tokens_completion_images", sa.Integer, nullable=True),
        sa.Column("num_media_prompt", sa.Integer, nullable=True),
        sa.Column("origin", sa.String(2000), nullable=False),
        sa.Column("http_referer", sa.String(2000), nullable=True),
        sa.Column("user_agent", sa.String(1000), nullable=True),
        sa.Column("external_user", sa.String(1000), nullable=True),
        sa.Column("app_title", sa.String(1000), nullable=True),
        sa.Column("router", sa.String(200), nullable=True),
        sa.Column("data_region", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("provider_responses", sa.JSON, nullable=True),
    )
    op.create_index("ix_generations_key_created", "generations", ["key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_generations_key_created", table_name="generations")
    op.drop_table("generations")
    op.drop_table("api_keys")
