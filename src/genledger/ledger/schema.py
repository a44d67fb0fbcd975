"""Tables of the ledger (SQLAlchemy Core). Money columns are integer picodollars.

Changing a table here needs a migration in ``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("label", String(200), nullable=False),
    Column("is_management", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("limit_pico", BigInteger, nullable=True),
    Column("limit_reset", String(16), nullable=True),
    Column("usage_pico", BigInteger, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    # Credits: what in-flight requests have reserved, and usage in the current limit period.
    Column("reserved_pico", BigInteger, nullable=False, default=0),
    Column("period_usage_pico", BigInteger, nullable=False, default=0),
    Column("period_start", DateTime(timezone=True), nullable=True),
    # Per-key rate limits; NULL means the configured default.
    Column("requests_per_minute", Integer, nullable=True),
    Column("tokens_per_minute", Integer, nullable=True),
)

generations = Table(
    "generations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("model", String(200), nullable=False),
    Column("api_type", String(32), nullable=True),
    Column("upstream_id", String(200), nullable=True),
    Column("provider_name", String(200), nullable=True),
    Column("total_cost_pico", BigInteger, nullable=False),
    Column("cache_discount_pico", BigInteger, nullable=True),
    Column("usage_pico", BigInteger, nullable=False),
    Column("streamed", Boolean, nullable=True),
    Column("cancelled", Boolean, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("generation_time_ms", Float, nullable=True),
    Column("finish_reason", String(32), nullable=True),
    Column("native_finish_reason", String(64), nullable=True),
    Column("tokens_prompt", Integer, nullable=True),
    Column("tokens_completion", Integer, nullable=True),
    Column("native_tokens_prompt", Integer, nullable=True),
    Column("native_tokens_completion", Integer, nullable=True),
    Column("native_tokens_reasoning", Integer, nullable=True),
    Column("native_tokens_cached", Integer, nullable=True),
    Column("native_tokens_cache_write", Integer, nullable=True),
    Column("native_tokens_completion_images", Integer, nullable=True),
    Column("num_media_prompt", Integer, nullable=True),
    Column("origin", String(2000), nullable=False),
    Column("http_referer", String(2000), nullable=True),
    Column("user_agent", String(1000), nullable=True),
    Column("external_user", String(1000), nullable=True),
    Column("app_title", String(1000), nullable=True),
    Column("router", String(200), nullable=True),
    Column("data_region", String(16), nullable=False),
    Column("request_id", String(200), nullable=True),
    Column("provider_responses", JSON, nullable=True),
    Column("session_id", String(256), nullable=True),
    Column("metadata", JSON().with_variant(JSONB(), "postgresql"), nullable=True),
    Column("price_version", Integer, nullable=True),
    Column("upstream_cost_pico", BigInteger, nullable=True),
    Index("ix_generations_key_created", "key_id", "created_at", "id"),
    Index("ix_generations_created", "created_at", "id"),
    # Sessions and users are selective (a few rows each), so they get indexes; partial ones, so a
    # request without a session or user pays nothing for them on the hot write path (SQLite
    # writes on the event loop: measured, five read indexes cost 15-20% of a streamed request's
    # CPU at 32 connections). A model is not selective: its first page walks the time index.
    Index(
        "ix_generations_session_created",
        "session_id",
        "created_at",
        sqlite_where=text("session_id IS NOT NULL"),
        postgresql_where=text("session_id IS NOT NULL"),
    ),
    Index(
        "ix_generations_user_created",
        "external_user",
        "created_at",
        sqlite_where=text("external_user IS NOT NULL"),
        postgresql_where=text("external_user IS NOT NULL"),
    ),
    Index(
        "ix_generations_metadata",
        "metadata",
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql"),
)

price_versions = Table(
    "price_versions",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    # Exact decimal strings, USD per million tokens (core.prices.price_to_json).
    Column("prices", JSON, nullable=False),
)

# Corrections as entries: written once, never updated or deleted.
adjustments = Table(
    "adjustments",
    metadata,
    Column("id", String(80), primary_key=True),  # one per generation and target version
    Column("generation_id", String(40), nullable=False),
    Column("key_id", String(36), nullable=False),
    Column("model", String(200), nullable=False),
    Column("generation_created_at", DateTime(timezone=True), nullable=False),
    Column("amount_pico", BigInteger, nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_adjustments_generation", "generation_id"),
    Index("ix_adjustments_created", "created_at"),
)

statements = Table(
    "statements",
    metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("totals", JSON, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("previous_hash", String(64), nullable=False),
)

statement_entries = Table(
    "statement_entries",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("entry_id", String(120), primary_key=True),
    Column("digest", String(64), nullable=False),
)

# Idempotent retries: the claim of an API key's idempotency key, and the answer kept for it.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key_id", String(36), primary_key=True),
    Column("idempotency_key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("finished", Boolean, nullable=False),
    Column("status", Integer, nullable=True),
    Column("media_type", String(100), nullable=True),
    Column("body", LargeBinary, nullable=True),
)
