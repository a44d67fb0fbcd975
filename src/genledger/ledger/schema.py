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
    false,
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
    # Whether this key's prompts and answers are stored; NULL means the configured default.
    Column("store_content", Boolean, nullable=True),
    # When the key stops working (401); NULL: never.
    Column("expires_at", DateTime(timezone=True), nullable=True),
    # OpenRouter's flag, kept as set: genledger has no bring-your-own-key usage to count.
    Column("include_byok_in_limit", Boolean, nullable=False, default=False, server_default=false()),
)

# One row per reservation of a key's credit: ``api_keys.reserved_pico`` is the sum of a key's
# rows. ``id`` is the generation's; ``owner`` the gateway instance that renews the lease while
# it lives. An expired lease is a dead instance's, given back by any instance.
reservations = Table(
    "reservations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(36), nullable=False),
    Column("owner", String(100), nullable=False),
    Column("amount_pico", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("lease_expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_reservations_owner", "owner"),
    Index("ix_reservations_lease", "lease_expires_at"),
)

# The rare values with partial indexes: name -> (SQLite predicate, PostgreSQL predicate).
RARE = {
    "errors": ("finish_reason = 'error'", "finish_reason = 'error'"),
    "cancelled": ("cancelled = 1", "cancelled"),
}


def _rare(name: str, predicates: tuple[str, str], scoped: bool) -> Index:
    """The partial index of the rows holding a rare value, newest first, per key if ``scoped``."""
    columns = ("key_id", "created_at", "id") if scoped else ("created_at", "id")
    return Index(
        f"ix_generations{'_key' if scoped else ''}_{name}",
        *columns,
        sqlite_where=text(predicates[0]),
        postgresql_where=text(predicates[1]),
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
    # On PostgreSQL these two end with "model" as well (migration 0009): a model has no index
    # of its own, and its page compares it in the index, not in the table.
    Index("ix_generations_key_created", "key_id", "created_at", "id"),
    Index("ix_generations_created", "created_at", "id"),
    # Sessions and users are selective (a few rows each), so they get indexes; partial ones, so a
    # request without a session or user pays nothing for them on the hot write path (SQLite
    # writes on the event loop: measured, five read indexes cost 15-20% of a streamed request's
    # CPU at 32 connections). A model is not selective: its first page walks the time index.
    # They end with the key, so that one key's page of a busy user or session compares keys in
    # the index, not in the table (migration 0009).
    Index(
        "ix_generations_session_created",
        "session_id",
        "created_at",
        "key_id",
        sqlite_where=text("session_id IS NOT NULL"),
        postgresql_where=text("session_id IS NOT NULL"),
    ),
    Index(
        "ix_generations_user_created",
        "external_user",
        "created_at",
        "key_id",
        sqlite_where=text("external_user IS NOT NULL"),
        postgresql_where=text("external_user IS NOT NULL"),
    ),
    # Rare values get partial indexes, which cost nothing on the inserts they do not hold (the
    # common ones). A query uses one only when it spells the same predicate with a literal, which
    # ``filters.py`` does for these values. Overall, and per key for an ordinary key's list.
    *(_rare(name, predicates, scoped) for name, predicates in RARE.items() for scoped in (False, True)),
)

# A generation's metadata pairs, one row each, written only with a generation that has metadata
# (so the common insert pays nothing for them). A list filtered by a pair walks this table's
# primary key newest first and joins each generation by its id; a row carries the generation's
# ``created_at`` and ``key_id`` so the walk orders and narrows without reading generations.
# On SQLite the table is its primary key (WITHOUT ROWID), ``key_id`` included; PostgreSQL has an
# index (key, value, key_id, created_at, generation_id) for one key's walk (migration 0009).
generation_metadata = Table(
    "generation_metadata",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(512), primary_key=True),
    Column("created_at", DateTime(timezone=True), primary_key=True),
    Column("generation_id", String(40), primary_key=True),
    Column("key_id", String(36), nullable=False),
    sqlite_with_rowid=False,
)

# Prompts and answers, kept only under the content policy (core/content.py); pruned by age.
generation_content = Table(
    "generation_content",
    metadata,
    Column("generation_id", String(40), primary_key=True),
    Column("key_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("body", LargeBinary, nullable=False),  # JSON, at most content_storage.max_bytes
    Index("ix_generation_content_created", "created_at"),
)

# One feedback per generation, from the key that made it; the list API shows it.
generation_feedback = Table(
    "generation_feedback",
    metadata,
    Column("generation_id", String(40), primary_key=True),
    Column("key_id", String(36), nullable=False),
    Column("category", String(32), nullable=False),
    Column("comment", String(2000), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
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


ROLLUP_DIMENSIONS = {
    "": ("key_id", "model", "provider_name"),
    "_by_model": ("model", "provider_name"),
    "_by_key": ("key_id",),
    "_total": (),
}
"""The rollup's tables per period, by name suffix: each sums over the dimensions it lacks, so a
read that needs fewer reads fewer rows (a day has ~900 key x model x provider rows at 1M
generations, ~60 model x provider rows, ~50 key rows, one total)."""
_DIMENSION_COLUMNS = {
    "key_id": lambda: Column("key_id", String(36), nullable=False),
    "model": lambda: Column("model", String(200), nullable=False),
    "provider_name": lambda: Column("provider_name", String(200), nullable=True),
}
ROLLUP_SUMS = (
    "requests",
    "usage_pico",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "errors",
)


def _rollup(name: str, dimensions: tuple[str, ...]) -> Table:
    """Activity summed per period (an hour or a day) x ``dimensions`` (``rollup.py``).

    Rows are additive: a group may have several (a catch-up's, and adjustments' written later),
    and readers sum them. ``through`` is the watermark of the catch-up that wrote the row, so
    a reader that read the watermark W counts only rows with ``through <= W``.
    """
    return Table(
        name,
        metadata,
        Column("start", DateTime(timezone=True), nullable=False),
        *(_DIMENSION_COLUMNS[dimension]() for dimension in dimensions),
        *(Column(column, BigInteger, nullable=False) for column in ROLLUP_SUMS),
        Column("through", DateTime(timezone=True), nullable=False),
        Index(f"ix_{name}_start", "start"),
    )


activity_hours, activity_days = (
    _rollup(f"activity_{period}", ROLLUP_DIMENSIONS[""]) for period in ("hours", "days")
)
rollups = {
    (period, suffix): _rollup(f"activity_{period}{suffix}", dimensions)
    for period in ("hours", "days")
    for suffix, dimensions in ROLLUP_DIMENSIONS.items()
    if suffix
}
rollups[("hours", "")] = activity_hours
rollups[("days", "")] = activity_days

# The rollup's watermarks (one row, id 1): every hour before ``hours_until`` and every day before
# ``days_until`` is rolled up; NULL until the first catch-up.
activity_rollup_state = Table(
    "activity_rollup_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("hours_until", DateTime(timezone=True), nullable=True),
    Column("days_until", DateTime(timezone=True), nullable=True),
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
