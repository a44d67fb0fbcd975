"""How fast the ledger's read side answers on a big ledger: one generation, list pages, activity, export.

Bulk-loads a realistic ledger (keys with Zipf-like traffic, models, providers, 90 days,
external users, sessions, metadata on ~30% of rows, ~2% errors, streamed and cancelled rows)
into a database migrated by the real ``Ledger.open``, starts a real ``genledger serve`` on it
and times a bounded number of sequential requests per case. See ``bench/README.md``.

    cd /work/main && .venv/bin/python bench/ledger_reads.py [--database sqlite|postgres]
        [--rows N] [--requests N] [--keep] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import asyncpg
from harness import (
    BenchError,
    Children,
    percentile,
    run_bench,
    start_gateway,
    status_kib,
    write_config,
)
from harness import (
    revision as revision_now,
)
from ledger_count import POSTGRES_HOST, admin_connection
from sqlalchemy import func, select

from genledger.api.list_wire import parse_list_query
from genledger.core.activity import ENDPOINT_DAYS
from genledger.core.stores import GenerationFilter
from genledger.ledger import Ledger
from genledger.ledger.schema import activity_days, activity_hours, generation_metadata, generations

KEYS: Final = 50
MODELS: Final = 20
PROVIDERS: Final = ("OpenAI", "Anthropic", "Google")
DAYS: Final = 90
USERS: Final = 10_000
CHUNK: Final = 50_000  # rows per COPY / per SQLite transaction
SQLITE_DIR: Final = Path(tempfile.gettempdir()) / "genledger-readbench"
PAGE: Final = 100  # the list's default page
CASE_SECONDS: Final = 30.0  # a case stops early after this long (a scan can take seconds a request)
WARMUP: Final = 5  # untimed requests per case
# The project's targets (issue 9): p99 of /generation and of a filtered first page.
TARGET_P99_MS: Final = 10.0
TARGET_SMALL_RATIO: Final = 1.5  # ... and at 1M rows within 1.5x of the 10M figure
COLUMNS: Final = [column.name for column in generations.columns]
PAIR_COLUMNS: Final = [column.name for column in generation_metadata.columns]


# ----------------------------------------------------------------------------------------- the data


def _zipf(n: int, s: float = 1.1) -> list[float]:
    """Cumulative weights of ranks 1..n under a Zipf-like law (for ``random.choices``)."""
    total, cumulative = 0.0, []
    for rank in range(1, n + 1):
        total += 1 / rank**s
        cumulative.append(total)
    return cumulative


@dataclass(frozen=True)
class Shape:
    """The ledger's make-up: who calls, what, and with which attributes."""

    key_ids: list[str]
    models: list[tuple[str, str, int, int]]  # slug, provider, prompt / completion picodollars per token
    users: list[str]
    metadata: list[str]  # JSON objects, 1 to 3 pairs
    attempts: dict[str, str]  # provider -> provider_responses JSON

    @classmethod
    def make(cls, key_ids: list[str]) -> Shape:
        rng = random.Random(7)
        models = []
        for i in range(MODELS):
            provider = PROVIDERS[i % len(PROVIDERS)]
            prompt = rng.choice((50_000, 150_000, 1_000_000, 3_000_000))
            models.append((f"{provider.lower()}/model-{i:02d}", provider, prompt, prompt * 4))
        metadata = []
        for _ in range(300):
            pairs = {"team": rng.choice(("search", "ads", "support", "growth", "infra"))}
            if rng.random() < 0.6:
                pairs["env"] = rng.choice(("prod", "staging"))
            if rng.random() < 0.4:
                pairs["feature"] = f"f{rng.randrange(20)}"
            metadata.append(json.dumps(pairs, separators=(",", ":")))
        attempts = {
            p: json.dumps(
                [{"status": 200, "provider_name": p, "latency": 250.0, "id": None, "is_byok": False}]
            )
            for p in PROVIDERS
        }
        return cls(key_ids, models, [f"user-{i:05d}" for i in range(USERS)], metadata, attempts)


def rows(shape: Shape, first: int, count: int, total: int, end: datetime) -> Iterator[tuple[Any, ...]]:
    """Rows ``first .. first+count`` of ``total``, in time order over the ``DAYS`` before ``end``.

    A ledger is appended in time order, so the table's physical order follows ``created_at``.
    """
    rng = random.Random(first)
    rand = rng.random
    keys = rng.choices(shape.key_ids, cum_weights=_KEY_WEIGHTS, k=count)
    models = rng.choices(shape.models, cum_weights=_MODEL_WEIGHTS, k=count)
    users = rng.choices(shape.users, cum_weights=_USER_WEIGHTS, k=count)
    start = end - timedelta(days=DAYS)
    step = DAYS * 86_400_000_000 / total  # microseconds between rows
    ids = secrets.token_hex(12 * count)
    for i in range(count):
        n = first + i
        created_at = start + timedelta(microseconds=int(n * step + rand() * step))
        slug, provider, prompt_price, completion_price = models[i]
        roll = rand()
        error = roll < 0.02
        streamed = rand() < 0.4
        cancelled = streamed and rand() < 0.02
        prompt = int(rand() * 2000) + 10
        completion = 0 if error else int(rand() * 800) + 1
        cost = prompt * prompt_price + completion * completion_price
        finish = "error" if error else ("length" if roll < 0.08 else "stop")
        key = keys[i]
        yield (
            "gen-" + ids[24 * i : 24 * i + 24],
            key,
            created_at,
            slug,
            "completions",
            None if error else f"chatcmpl-{n}",
            provider,
            cost,
            None,
            cost,
            streamed,
            cancelled,
            250.0 + rand() * 2000,
            200.0 + rand() * 1500,
            finish,
            finish,
            prompt,
            completion,
            prompt,
            completion,
            None,
            None,
            None,
            None,
            0,
            "",
            None,
            "bench/1.0",
            users[i] if rand() < 0.6 else None,
            None,
            None,
            "global",
            None,
            shape.attempts[provider],
            f"s-{key[:8]}-{n // 400}" if rand() < 0.4 else None,
            shape.metadata[int(rand() * len(shape.metadata))] if rand() < 0.3 else None,
            1,  # price_version
            _upstream_cost(cost, rand()),
        )


def _upstream_cost(cost: int, roll: float) -> int | None:
    """What an OpenRouter-compatible upstream says a call cost: on 10% of the rows, and 1% above
    ours on one in 200 of those (drift)."""
    if roll >= 0.1:
        return None
    return cost + cost // 100 if roll < 0.0005 else cost


_KEY_WEIGHTS = _zipf(KEYS)
_MODEL_WEIGHTS = _zipf(MODELS, 0.9)
_USER_WEIGHTS = _zipf(USERS, 0.8)


def pairs(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The ``generation_metadata`` rows of ``batch`` (rows as ``rows`` yields them), as the writer
    makes them: one per pair of a generation with metadata."""
    assert PAIR_COLUMNS == ["key", "value", "created_at", "generation_id", "key_id"]
    found = []
    at = COLUMNS.index("metadata")
    for row in batch:
        if row[at] is not None:
            found.extend((k, v, row[2], row[0], row[1]) for k, v in json.loads(row[at]).items())
    return found


# ------------------------------------------------------------------------------------------ loading


@dataclass
class Database:
    kind: str
    url: str
    name: str  # PostgreSQL database or SQLite file

    async def fetch(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.name)) as connection:
                return [tuple(r) for r in connection.execute(query.replace("$", "?"), args).fetchall()]
        connection = await asyncpg.connect(self.url)
        try:
            return [tuple(r) for r in await connection.fetch(query, *args)]
        finally:
            await connection.close()


@contextlib.asynccontextmanager
async def database(
    kind: str, rows: int, keep: bool, name: str | None = None
) -> AsyncIterator[tuple[Database, bool]]:
    """The bench's database (``name``, default ``genledger_readbench_<rows>``) and whether it is
    loaded already; dropped afterwards unless ``keep``."""
    name = name or f"genledger_readbench_{rows}"
    if kind == "sqlite":
        SQLITE_DIR.mkdir(exist_ok=True)
        path = SQLITE_DIR / f"{name}.db"
        loaded = path.exists() and _sqlite_loaded(path)
        if not loaded:
            _unlink_sqlite(path)
        try:
            yield Database(kind, f"sqlite:///{path}", str(path)), loaded
        finally:
            if not keep:
                _unlink_sqlite(path)
        return
    admin, user = await admin_connection()
    try:
        loaded = bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
        if loaded:
            probe = await asyncpg.connect(f"postgresql://{user}@{POSTGRES_HOST}/{name}")
            try:
                loaded = bool(await probe.fetchval("SELECT to_regclass('readbench_loaded') IS NOT NULL"))
            finally:
                await probe.close()
        if not loaded:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield Database(kind, f"postgresql://{user}@{POSTGRES_HOST}/{name}", name), loaded
    finally:
        if not keep:
            admin, _ = await admin_connection()
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


def _unlink_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sqlite_loaded(path: Path) -> bool:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return bool(
            connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'readbench_loaded'").fetchone()
        )


async def create_keys(url: str) -> None:
    """Migrate through the real ``Ledger.open``; create ``readbench-NN`` and ``readbench-admin``."""
    ledger = await Ledger.open(url)
    try:
        for i in range(KEYS):
            await ledger.keys.create(f"readbench-{i:02d}")
        await ledger.keys.create("readbench-admin", management=True)
    finally:
        await ledger.close()


async def load(db: Database, total: int, rebuild_indexes: bool) -> dict[str, Any]:
    """Fill ``generations``: the keys by rank, then ``total`` rows in chunks; load timings."""
    await create_keys(db.url)
    key_rows = await db.fetch("SELECT name, id FROM api_keys WHERE name LIKE 'readbench-__' ORDER BY name")
    shape = Shape.make([key_id for _, key_id in key_rows])
    end = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    if db.kind == "sqlite":
        indexes, timings = _load_sqlite(db.name, shape, total, end, rebuild_indexes)
    else:
        indexes, timings = await _load_postgres(db.url, shape, total, end, rebuild_indexes)
    elapsed = time.perf_counter() - started
    timings["total_s"] = round(elapsed, 1)
    timings["rows_per_s"] = round(total / elapsed)  # (not the rounded: a small load rounds to 0 s)
    timings["indexes"] = indexes
    timings["indexes_rebuilt"] = rebuild_indexes
    return timings


def _progress(done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(f"  loaded {done:,} / {total:,} rows, {done / elapsed:,.0f} rows/s", file=sys.stderr, flush=True)


def _load_sqlite(
    path: str, shape: Shape, total: int, end: datetime, rebuild: bool
) -> tuple[list[str], dict[str, Any]]:
    from sqlalchemy.dialects.sqlite.pysqlite import dialect

    to_text = generations.c.created_at.type.dialect_impl(dialect()).bind_processor(dialect())
    assert to_text is not None
    insert = f"INSERT INTO generations ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    insert_pairs = "INSERT INTO generation_metadata ({}) VALUES ({})".format(
        ", ".join(PAIR_COLUMNS), ", ".join("?" * len(PAIR_COLUMNS))
    )
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-1000000")  # 1 GB of page cache while loading
        ddl = [
            (name, sql)
            for name, sql in connection.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'generations' "
                "AND sql IS NOT NULL"
            )
        ]
        if rebuild:
            for name, _ in ddl:
                connection.execute(f"DROP INDEX {name}")
        started = time.perf_counter()
        for first in range(0, total, CHUNK):
            batch = [
                (*row[:2], to_text(row[2]), *row[3:])
                for row in rows(shape, first, min(CHUNK, total - first), total, end)
            ]
            connection.execute("BEGIN")
            connection.executemany(insert, batch)
            connection.executemany(insert_pairs, pairs(batch))
            connection.execute("COMMIT")
            if (first // CHUNK) % 10 == 9:
                _progress(first + len(batch), total, started)
        timings: dict[str, Any] = {"rows_s": round(time.perf_counter() - started, 1)}
        started = time.perf_counter()
        if rebuild:
            for _, sql in ddl:
                connection.execute(sql)
        # No ANALYZE: nothing runs one on a gateway's ledger, so its plans are made without statistics.
        connection.execute("CREATE TABLE readbench_loaded (rows INTEGER)")
        connection.execute("INSERT INTO readbench_loaded VALUES (?)", (total,))
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        timings["indexes_and_analyze_s"] = round(time.perf_counter() - started, 1)
    return [name for name, _ in ddl], timings


async def _load_postgres(
    url: str, shape: Shape, total: int, end: datetime, rebuild: bool
) -> tuple[list[str], dict[str, Any]]:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SET synchronous_commit = off; SET maintenance_work_mem = '1GB'")
        ddl = [
            (r["indexname"], r["indexdef"])
            for r in await connection.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'generations' "
                "AND indexname <> 'generations_pkey'"
            )
        ]
        if rebuild:
            for name, _ in ddl:
                await connection.execute(f"DROP INDEX {name}")
        started = time.perf_counter()
        for first in range(0, total, CHUNK):
            count = min(CHUNK, total - first)
            batch = list(rows(shape, first, count, total, end))
            await connection.copy_records_to_table("generations", records=batch, columns=COLUMNS)
            await connection.copy_records_to_table(
                "generation_metadata", records=pairs(batch), columns=PAIR_COLUMNS
            )
            if (first // CHUNK) % 20 == 19:
                _progress(first + count, total, started)
        timings: dict[str, Any] = {"rows_s": round(time.perf_counter() - started, 1)}
        started = time.perf_counter()
        if rebuild:
            for _, sql in ddl:
                await connection.execute(sql)
        await connection.execute("VACUUM ANALYZE generations")
        await connection.execute("VACUUM ANALYZE generation_metadata")
        await connection.execute("CREATE TABLE readbench_loaded (rows bigint)")
        await connection.execute("INSERT INTO readbench_loaded VALUES ($1)", total)
        timings["indexes_and_analyze_s"] = round(time.perf_counter() - started, 1)
    finally:
        await connection.close()
    return [name for name, _ in ddl], timings


# ------------------------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    queries: list[dict[str, str]]  # cycled through, one per request
    management: bool = False


def _iso(value: Any) -> str:
    if isinstance(value, str):  # SQLite
        value = datetime.fromisoformat(value)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")


async def sample(db: Database, n: int) -> dict[str, Any]:
    """Values to ask for, read from the loaded rows: ids of the busiest key, users, sessions, pairs."""
    (key_id,) = (await db.fetch("SELECT id FROM api_keys WHERE name = 'readbench-00'"))[0]
    first, last = (await db.fetch("SELECT MIN(created_at), MAX(created_at) FROM generations"))[0]
    first_t, last_t = datetime.fromisoformat(_iso(first)), datetime.fromisoformat(_iso(last))
    span = (last_t - first_t).total_seconds()
    rng = random.Random(11)
    points = [first_t + timedelta(seconds=rng.random() * span) for _ in range(n)]
    if db.kind == "sqlite":
        from sqlalchemy.dialects.sqlite.pysqlite import dialect

        process = generations.c.created_at.type.dialect_impl(dialect()).bind_processor(dialect())
        assert process is not None
        bind = [process(p) for p in points]
    else:
        bind = points
    own, any_rows = [], []
    for point in bind:
        own += await db.fetch(
            "SELECT id FROM generations WHERE key_id = $1 AND created_at >= $2 ORDER BY created_at LIMIT 1",
            key_id,
            point,
        )
        any_rows += await db.fetch(
            "SELECT external_user, session_id, metadata, total_cost_pico FROM generations "
            "WHERE created_at >= $1 ORDER BY created_at LIMIT 20",
            point,
        )
    users = [r[0] for r in any_rows if r[0]]
    sessions = [r[1] for r in any_rows if r[1]]
    pairs = []
    for r in any_rows:
        if r[2]:
            pairs.extend(json.loads(r[2]).items() if isinstance(r[2], str) else r[2].items())
    costs = sorted(int(r[3]) for r in any_rows)
    return {
        "ids": [r[0] for r in own],
        "users": users,
        "sessions": sessions,
        "pairs": pairs,
        "cost_p90_usd": costs[int(len(costs) * 0.9)] / 1e12,
        "days": [first_t + timedelta(days=1 + rng.random() * (DAYS - 2)) for _ in range(n)],
        "last": last_t,
    }


def cases(s: dict[str, Any], n: int, shape_models: list[str]) -> list[Case]:
    rng = random.Random(5)

    def pick(values: list[Any]) -> list[Any]:
        return [values[rng.randrange(len(values))] for _ in range(n)]

    filters: list[tuple[str, list[dict[str, str]]]] = [
        ("no filter", [{}]),
        ("model", [{"model": m} for m in shape_models]),
        ("provider_name", [{"provider_name": p} for p in PROVIDERS]),
        ("finish_reason=error", [{"finish_reason": "error"}]),
        ("streamed=true", [{"streamed": "true"}]),
        ("cancelled=true", [{"cancelled": "true"}]),
        ("external_user", [{"external_user": u} for u in pick(s["users"])]),
        ("session_id", [{"session_id": v} for v in pick(s["sessions"])]),
        ("metadata[k]=v", [{f"metadata[{k}]": v} for k, v in pick(s["pairs"])]),
        (
            "created 1-day range",
            [
                {"created_after": _iso(day), "created_before": _iso(day + timedelta(days=1))}
                for day in s["days"]
            ],
        ),
        ("created_after 7 days", [{"created_after": _iso(s["last"] - timedelta(days=7))}]),
        ("min_cost (top 10%)", [{"min_cost": f"{s['cost_p90_usd']:.6f}"}]),
    ]
    found = [Case("GET /generation (own, random)", "/api/v1/generation", [{"id": i} for i in s["ids"]])]
    for name, queries in filters:
        found.append(Case(f"list, ordinary key: {name}", "/api/v1/generations", queries))
    for name, queries in filters:
        found.append(Case(f"list, management key: {name}", "/api/v1/generations", queries, management=True))
    return found


async def run_case(session: aiohttp.ClientSession, base: str, case: Case, n: int) -> dict[str, Any]:
    latencies: list[float] = []
    rows_seen = 0
    failures: list[str] = []
    deadline = time.monotonic() + CASE_SECONDS
    for i in range(WARMUP + n):
        query = case.queries[i % len(case.queries)]
        started = time.perf_counter()
        async with session.get(f"{base}{case.path}?{urlencode(query)}") as response:
            body = await response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                failures.append(f"{response.status}: {body[:200]!r}")
                if len(failures) >= 3:
                    break
                continue
        if i >= WARMUP:
            latencies.append(elapsed)
            data = json.loads(body)["data"]
            rows_seen += len(data) if isinstance(data, list) else 1
        if time.monotonic() > deadline and len(latencies) >= 10:
            break
    if not latencies:
        return {"failures": failures, "requests": 0}
    return {
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(percentile(latencies, 99) * 1000, 3),
        "max_ms": round(max(latencies) * 1000, 3),
        "rows_per_request": round(rows_seen / len(latencies), 1),
        "stopped_early": len(latencies) < n,
        "failures": failures,
    }


async def optional_routes(
    session: aiohttp.ClientSession,
    admin: aiohttp.ClientSession,
    base: str,
    gateway_pid: int,
    n: int,
    last: datetime,
) -> dict[str, Any]:
    """``GET /api/v1/activity`` (a management key's) and ``GET /api/v1/generations/export``
    (the ordinary key's), when this tree has them."""
    found: dict[str, Any] = {}
    since = (last - timedelta(days=30)).date().isoformat()
    async with admin.get(f"{base}/api/v1/activity") as probe:
        await probe.read()
    if probe.status == 404:
        found["activity"] = "absent (404): skipped"
    else:
        case = Case("activity 30 days", "/api/v1/activity", [{"date": since}, {}])
        found["activity"] = await run_case(admin, base, case, min(n, 50))
    async with session.get(f"{base}/api/v1/generations/export", params={"limit": "1"}) as probe:
        await probe.read()
    if probe.status == 404:
        found["export"] = "absent (404): skipped"
        return found
    started = time.perf_counter()
    lines = size = 0
    async with session.get(f"{base}/api/v1/generations/export", params={"created_after": since}) as response:
        async for chunk in response.content.iter_chunked(1 << 16):
            lines += chunk.count(b"\n")
            size += len(chunk)
        status = response.status
    elapsed = time.perf_counter() - started
    found["export"] = {
        "status": status,
        "lines": lines,
        "mib": round(size / 2**20, 1),
        "seconds": round(elapsed, 2),
        "rows_per_s": round(lines / elapsed) if elapsed else None,
        "gateway_peak_rss_mib": round(status_kib(gateway_pid, "VmHWM") / 1024, 1),
    }
    return found


async def store_cases(url: str, key_id: str, all_cases: list[Case], n: int) -> dict[str, Any]:
    """The list cases timed in this process on the store itself (``SqlGenerationStore.list``, the
    gateway's own query and row decoding): no HTTP, no JSON, and so less of the host's noise."""
    found: dict[str, Any] = {}
    ledger = await Ledger.open(url)
    try:
        for case in all_cases:
            if case.path != "/api/v1/generations":
                continue
            latencies = []
            for i in range(WARMUP + n):
                query = case.queries[i % len(case.queries)]
                parsed = parse_list_query(query, list(query))
                where = parsed.where if case.management else replace(parsed.where, key_id=key_id)
                started = time.perf_counter()
                await ledger.generations.list(where, limit=PAGE)
                if i >= WARMUP:
                    latencies.append(time.perf_counter() - started)
            found[case.name] = {
                "p50_ms": round(statistics.median(latencies) * 1000, 3),
                "p99_ms": round(percentile(latencies, 99) * 1000, 3),
            }
            r = found[case.name]
            print(f"  store, {case.name}: {r['p50_ms']} / {r['p99_ms']} ms", file=sys.stderr, flush=True)
    finally:
        await ledger.close()
    return found


async def roll_up(url: str, last: datetime, n: int) -> dict[str, Any]:
    """Catch the activity rollup up, timed (what the first activity read of a freshly loaded or
    upgraded ledger does), then time a 30-day ``activity`` by day, model and provider (the
    endpoint's own grouping) in the store itself, with no HTTP."""
    ledger = await Ledger.open(url)
    try:
        started = time.perf_counter()
        marks = await ledger.generations.rollup.catch_up()
        built = time.perf_counter() - started
        async with ledger.engine.connect() as connection:
            counted = [
                (await connection.execute(select(func.count()).select_from(table))).scalar()
                for table in (activity_hours, activity_days)
            ]
        hours, days = counted
        where = GenerationFilter(created_after=last - timedelta(days=30))
        latencies = []
        for i in range(WARMUP + n):
            started = time.perf_counter()
            rows = await ledger.generations.activity(where, ENDPOINT_DAYS)
            if i >= WARMUP:
                latencies.append(time.perf_counter() - started)
    finally:
        await ledger.close()
    found = {
        "catch_up_s": round(built, 1),
        "hours_until": marks.hours.isoformat() if marks.hours else None,
        "rollup_rows": {"hours": hours, "days": days},
        "activity_30d_store": {
            "requests": len(latencies),
            "groups": len(rows),
            "p50_ms": round(statistics.median(latencies) * 1000, 3),
            "p99_ms": round(percentile(latencies, 99) * 1000, 3),
        },
    }
    print(f"  rollup: {found}", file=sys.stderr, flush=True)
    return found


def load_average() -> str:
    """``uptime``'s three figures: how busy the shared host was."""
    return " ".join(f"{figure:.2f}" for figure in os.getloadavg())


async def rotate(url: str, name: str) -> str:
    ledger = await Ledger.open(url)
    try:
        rotated = await ledger.keys.rotate(name)
    finally:
        await ledger.close()
    if rotated is None:
        raise BenchError(f"no key {name} in the loaded ledger")
    return rotated[1]


# ---------------------------------------------------------------------------------------------- the run


async def bench(args: argparse.Namespace, children: Children, workdir: Path) -> dict[str, Any]:
    async with database(args.database, args.rows, args.keep, args.name) as (db, loaded):
        try:
            return await _bench(args, children, workdir, db, loaded)
        finally:
            children.stop_all()  # before the database is dropped


async def _bench(
    args: argparse.Namespace, children: Children, workdir: Path, db: Database, loaded: bool
) -> dict[str, Any]:
    revision = revision_now()
    if loaded:
        print(f"reusing the loaded {db.name}", file=sys.stderr, flush=True)
        timings: dict[str, Any] = {"reused": True}
    else:
        print(f"loading {args.rows:,} rows into {db.name} ...", file=sys.stderr, flush=True)
        timings = await load(db, args.rows, not args.load_with_indexes)
        print(f"  loaded: {timings}", file=sys.stderr, flush=True)
    ordinary, management = await rotate(db.url, "readbench-00"), await rotate(db.url, "readbench-admin")
    if loaded and db.kind == "postgres":
        # Opening the ledger may have migrated it (0004 fills generation_metadata): analyze what
        # changed, as autovacuum would after a bulk insert.
        await db.fetch("VACUUM ANALYZE generation_metadata")
    sizes = await table_size(db)
    values = await sample(db, args.requests)
    models = [m for m, _, _, _ in Shape.make([]).models]
    (own_key,), *_ = await db.fetch("SELECT id FROM api_keys WHERE name = 'readbench-00'")
    load_before = load_average()
    rolled = await roll_up(db.url, values["last"], min(args.requests, 50))
    in_store = await store_cases(db.url, own_key, cases(values, args.requests, models), args.requests)
    config = write_config(workdir, db.url, "http://127.0.0.1:9/v1")  # reads never call upstream
    gateway, base = start_gateway(children, workdir, config)
    results: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {ordinary}"}, timeout=timeout) as own,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {management}"}, timeout=timeout) as admin,
    ):
        for case in cases(values, args.requests, models):
            results[case.name] = await run_case(admin if case.management else own, base, case, args.requests)
            r = results[case.name]
            print(f"  {case.name}: {r.get('p50_ms')} / {r.get('p99_ms')} ms", file=sys.stderr, flush=True)
        extra = await optional_routes(own, admin, base, gateway.pid, args.requests, values["last"])
    gateway.check_alive()
    return {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": args.database,
            "rows": args.rows,
            "requests": args.requests,
            "revision": revision,
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "rollup": rolled,
        "load": timings,
        "size": sizes,
        "cases": results,
        "store_cases": in_store,
        **extra,
        "gateway_peak_rss_mib": round(status_kib(gateway.pid, "VmHWM") / 1024, 1),
    }


async def table_size(db: Database) -> dict[str, Any]:
    if db.kind == "sqlite":
        (pages, page_size), *_ = await db.fetch("SELECT * FROM pragma_page_count(), pragma_page_size()")
        return {"file_mib": round(pages * page_size / 2**20)}
    (table, indexes), *_ = await db.fetch(
        "SELECT pg_table_size('generations'), pg_indexes_size('generations')"
    )
    per_index = await db.fetch(
        "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
        "WHERE indrelid = 'generations'::regclass ORDER BY 1"
    )
    (pairs_size,), *_ = await db.fetch("SELECT pg_total_relation_size('generation_metadata')")
    return {
        "metadata_pairs_mib": round(pairs_size / 2**20),
        "table_mib": round(table / 2**20),
        "indexes_mib": round(indexes / 2**20),
        "per_index_mib": {name: round(size / 2**20) for name, size in per_index},
    }


def report(result: dict[str, Any]) -> str:
    meta, load_ = result["meta"], result["load"]
    lines = [
        f"genledger ledger reads: {meta['database']}, {meta['rows']:,} generations, "
        f"{meta['cpus']} CPUs shared; genledger {meta['revision']}; load average "
        f"{meta['load_average_before']} before, {meta['load_average_after']} after",
        f"rollup: {result['rollup']}",
        f"load: {load_}",
        f"size: {result['size']}",
        "",
        f"  {'case':58}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'rows':>7}"
        f"  target p99<={TARGET_P99_MS:g}",
    ]
    for name, r in result["cases"].items():
        if not r.get("requests"):
            lines.append(f"  {name:58} FAILED {r.get('failures')}")
            continue
        verdict = "met" if r["p99_ms"] <= TARGET_P99_MS else "MISSED"
        lines.append(
            f"  {name:58}{r['requests']:>5}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['max_ms']:>9.2f}"
            f"{r['rows_per_request']:>7.0f}  {verdict}{' (stopped early)' if r['stopped_early'] else ''}"
        )
    lines += ["", "in the store (no HTTP, no JSON): p50 / p99 ms"]
    for name, r in result["store_cases"].items():
        lines.append(f"  {name:58}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}")
    lines += [
        "",
        f"activity: {result['activity']}",
        f"export: {result['export']}",
        f"gateway peak RSS (VmHWM): {result['gateway_peak_rss_mib']} MiB",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000, help="generations to load")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the loaded database for the next run with the same --database and --rows "
        "(which reuses it); a run without --keep drops it at the end",
    )
    parser.add_argument(
        "--load-with-indexes",
        action="store_true",
        help="load with the indexes in place instead of dropping and recreating them around the load",
    )
    parser.add_argument("--name", default=None, help="the database's name (a shared host: your own)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.requests < 1:
        parser.error("--rows must be at least 1000 and --requests at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_bench(lambda children, workdir: bench(args, children, workdir), "genledger-readbench-")
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    failed = any(not r.get("requests") for r in result["cases"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
