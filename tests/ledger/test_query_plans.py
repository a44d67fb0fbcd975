"""The list's first pages walk an index, on both databases: never a scan of generations, never a sort.

(A sort of the ties of ``created_at`` within an index's order, SQLite's "right part of ORDER BY"
and PostgreSQL's incremental sort, stops at the limit, and is allowed.)

The statements are the store's own (``list_statement``), explained on a freshly migrated
ledger holding 20,000 rows shaped like a real ledger's. SQLite: ``EXPLAIN QUERY PLAN``,
without statistics (as a live ledger has none). PostgreSQL: ``EXPLAIN (FORMAT JSON)`` after
``ANALYZE`` (as autovacuum runs it).
Which index each filter should use was chosen by ``bench/ledger_reads.py`` (``bench/README.md``).
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ClauseElement, Executable, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from genledger.core.stores import Cursor, GenerationFilter
from genledger.ledger import Ledger
from genledger.ledger.generations import list_statement
from genledger.ledger.schema import generation_metadata, generations
from tests.services import postgres_database

T0 = datetime(2026, 11, 1, tzinfo=UTC)
KEY = "5b0c8d0e-0000-4000-8000-000000000000"


class Explain(Executable, ClauseElement):
    """``EXPLAIN ...`` of a statement, its parameters bound as the statement's own would be."""

    inherit_cache = False

    def __init__(self, statement: Any, prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(Explain)
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ledger seeded once per module and database: the tests only explain statements on it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('plans')}/plans.db"
        asyncio.run(_seed(url))
        yield url
    else:
        with postgres_database() as url:
            asyncio.run(_seed(url))
            yield url


def _seed_rows(count: int) -> list[dict[str, Any]]:
    """A small ledger shaped like a real one: a few busy keys, 20 models, rare sessions and users."""
    rng = random.Random(3)
    keys = [KEY, *(str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(9))]
    found = []
    for i in range(count):
        found.append(
            {
                "id": f"gen-{i:024d}",
                "key_id": keys[min(int(rng.expovariate(0.5)), 9)],
                "created_at": T0 + timedelta(seconds=i * 60),
                "model": f"m-{min(int(rng.expovariate(0.2)), 19):02d}",
                "provider_name": ("Acme", "Other", "Third")[i % 3],
                "total_cost_pico": rng.randrange(10**10),
                "usage_pico": 0,
                "streamed": rng.random() < 0.4,
                "cancelled": rng.random() < 0.01,
                "finish_reason": "error" if rng.random() < 0.02 else "stop",
                "origin": "",
                "data_region": "global",
                "external_user": f"u{rng.randrange(1000)}" if rng.random() < 0.6 else None,
                "session_id": f"s{i // 40}" if rng.random() < 0.4 else None,
                "metadata": _metadata(rng) if rng.random() < 0.3 else None,
            }
        )
    return found


def _metadata(rng: random.Random) -> dict[str, str]:
    pairs = {"team": rng.choice(("a", "b", "c"))}
    if rng.random() < 0.5:
        pairs["env"] = rng.choice(("prod", "staging"))
    return pairs


def _pairs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The metadata table's rows for ``rows``, as the ledger's writer makes them (one per pair)."""
    return [
        {"key": k, "value": v, "created_at": r["created_at"], "generation_id": r["id"], "key_id": r["key_id"]}
        for r in rows
        for k, v in (r["metadata"] or {}).items()
    ]


async def _seed(url: str) -> None:
    """20,000 rows; PostgreSQL analyzed (as autovacuum would), SQLite not (as live)."""
    ledger = await Ledger.open(url)
    try:
        async with ledger.engine.begin() as connection:
            rows = _seed_rows(20_000)
            await connection.execute(insert(generations), rows)
            await connection.execute(insert(generation_metadata), _pairs(rows))
        async with ledger.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(text("ANALYZE generations"))
                await connection.execute(text("ANALYZE generation_metadata"))
                await connection.commit()  # statistics are transactional
    finally:
        await ledger.close()


@pytest.fixture
async def connection(ledger: Ledger) -> AsyncIterator[AsyncConnection]:
    """A connection to the seeded ledger."""
    async with ledger.engine.connect() as connection:
        yield connection


_PAIRS = "generation_metadata_pkey"  # SQLite's plan says "generation_metadata USING PRIMARY KEY"
_PAIRS_BY_KEY = "ix_generation_metadata_key"  # PostgreSQL only: one key's pairs

# (case, filter, the indexes its first page may walk). ``key_id`` is what an ordinary key's list
# (and a management key naming a key) adds. Where two are listed, PostgreSQL's statistics pick
# (e.g. the busiest key's rows are dense enough in the time index to walk that).
CASES: list[tuple[str, GenerationFilter, set[str]]] = [
    ("everyone", GenerationFilter(), {"ix_generations_created"}),
    ("one key", GenerationFilter(key_id=KEY), {"ix_generations_key_created", "ix_generations_created"}),
    (
        "everyone, model",
        GenerationFilter(model="m-03"),
        {"ix_generations_created"},
    ),
    ("everyone, user", GenerationFilter(external_user="u17"), {"ix_generations_user_created"}),
    ("everyone, session", GenerationFilter(session_id="s20"), {"ix_generations_session_created"}),
    ("one key, session", GenerationFilter(key_id=KEY, session_id="s20"), {"ix_generations_session_created"}),
    ("one key, user", GenerationFilter(key_id=KEY, external_user="u17"), {"ix_generations_user_created"}),
    (
        "everyone, time range",
        GenerationFilter(created_after=T0, created_before=T0.replace(day=2)),
        {"ix_generations_created"},
    ),
    (
        "one key, time range",
        GenerationFilter(key_id=KEY, created_after=T0),
        {"ix_generations_key_created", "ix_generations_created"},
    ),
    ("everyone, provider", GenerationFilter(provider_name="Acme"), {"ix_generations_created"}),
    ("everyone, streamed", GenerationFilter(streamed=True), {"ix_generations_created"}),
    ("everyone, min cost", GenerationFilter(min_cost_pico=10**9), {"ix_generations_created"}),
    (
        "one key, model",
        GenerationFilter(key_id=KEY, model="m-03"),
        {"ix_generations_key_created", "ix_generations_created"},
    ),
    (
        "one key, provider",
        GenerationFilter(key_id=KEY, provider_name="Acme"),
        {"ix_generations_key_created", "ix_generations_created"},
    ),
    # The rare values walk their partial indexes (migration 0004).
    ("everyone, errors", GenerationFilter(finish_reason="error"), {"ix_generations_errors"}),
    (
        "one key, errors",
        GenerationFilter(key_id=KEY, finish_reason="error"),
        {"ix_generations_key_errors", "ix_generations_errors"},
    ),
    ("everyone, cancelled", GenerationFilter(cancelled=True), {"ix_generations_cancelled"}),
    (
        "one key, cancelled",
        GenerationFilter(key_id=KEY, cancelled=True),
        {"ix_generations_key_cancelled", "ix_generations_cancelled"},
    ),
    # A metadata pair walks the pairs' table newest first, and joins generations by id.
    ("everyone, metadata", GenerationFilter(metadata=(("team", "a"),)), {_PAIRS}),
    ("one key, metadata", GenerationFilter(key_id=KEY, metadata=(("team", "a"),)), {_PAIRS, _PAIRS_BY_KEY}),
    (
        "everyone, two metadata pairs",
        GenerationFilter(metadata=(("team", "a"), ("env", "prod"))),
        {_PAIRS},
    ),
    (
        "one key, metadata, time range",
        GenerationFilter(key_id=KEY, created_after=T0, metadata=(("env", "staging"),)),
        {_PAIRS, _PAIRS_BY_KEY},
    ),
]


_FEW_ROWS = {"ix_generations_session_created", "ix_generations_user_created"}
_FEW_TO_SORT = 1000  # PostgreSQL's estimate of a sort's rows, under which a sort is allowed


def _sqlite_plan(rows: list[Any]) -> str:
    return "\n".join(str(row[-1]) for row in rows)


def _postgres_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _postgres_nodes(child)


async def plan_of(connection: AsyncConnection, statement: Any) -> tuple[str, set[str], str]:
    """(the plan as text, the indexes it reads, a reason it reads a whole table or sorts, else "")."""
    if connection.dialect.name == "sqlite":
        rows = (await connection.execute(Explain(statement, "EXPLAIN QUERY PLAN"))).all()
        plan = _sqlite_plan(rows)
        used = {word for line in plan.splitlines() for word in line.split() if word.startswith("ix_")}
        if any(line.startswith("SEARCH generation_metadata USING PRIMARY KEY") for line in plan.splitlines()):
            used.add(_PAIRS)
        bad = ""
        for line in plan.splitlines():
            if line.startswith("SCAN generation") and "INDEX" not in line and "PRIMARY KEY" not in line:
                bad = f"full scan: {line}"
            # "RIGHT PART OF ORDER BY" sorts only rows with equal created_at (the index's
            # order), stopping at the limit; a whole-result sort reads every match first.
            if "TEMP B-TREE" in line and "RIGHT PART" not in line:
                bad = f"sort: {line}"
        return plan, used, bad
    raw = (await connection.execute(Explain(statement, "EXPLAIN (FORMAT JSON)"))).scalar_one()
    document = raw if isinstance(raw, list) else json.loads(raw)
    nodes = list(_postgres_nodes(document[0]["Plan"]))
    used = {node["Index Name"] for node in nodes if "Index Name" in node}
    bad = ""
    for node in nodes:
        if node["Node Type"] == "Seq Scan":
            bad = "sequential scan"
        if node["Node Type"] == "Sort" and not used & _FEW_ROWS and node["Plan Rows"] > _FEW_TO_SORT:
            # A sort of one session's or one user's few rows is cheap, and so is one of a few
            # hundred rare rows, which the planner rightly prefers on this small ledger (a bitmap
            # scan of a partial index, then a sort); any other sort would read every match before
            # the first row. (An Incremental Sort, of created_at's ties, is fine.)
            bad = f"sort of ~{node['Plan Rows']} rows on {node.get('Sort Key')}"
    return json.dumps(document, indent=1), used, bad


@pytest.mark.parametrize(("case", "where", "indexes"), CASES, ids=[case for case, _, _ in CASES])
async def test_first_and_next_pages_walk_the_intended_index(
    connection: AsyncConnection, case: str, where: GenerationFilter, indexes: set[str]
) -> None:
    dialect = connection.dialect.name
    for after in (None, Cursor(T0 + timedelta(minutes=15_000), "gen-x")):  # 3/4 of the rows
        plan, used, bad = await plan_of(connection, list_statement(where, dialect, limit=101, after=after))
        assert not bad, f"{case} ({dialect}, after={after}): {bad}\n{plan}"
        assert used & indexes, f"{case} ({dialect}): expected one of {indexes}, got {used}\n{plan}"


async def test_get_by_id_is_a_primary_key_lookup(connection: AsyncConnection) -> None:
    statement = select(generations).where(generations.c.id == "gen-x", generations.c.key_id == KEY)
    plan, used, bad = await plan_of(connection, statement)
    assert not bad, plan
    assert used <= {"generations_pkey"} or "sqlite_autoindex_generations_1" in plan, plan


async def _walked(connection: AsyncConnection, where: GenerationFilter) -> tuple[str, list[list[str]]]:
    """(the plan of ``where``'s first page, the columns of each index it walks)."""
    plan, used, bad = await plan_of(connection, list_statement(where, connection.dialect.name, limit=101))
    assert not bad, plan
    indexes = await connection.run_sync(lambda sync: inspect(sync).get_indexes("generations"))
    return plan, [found["column_names"] for found in indexes if found["name"] in used]


def _compared_in_the_index(plan: str, column: str) -> bool:
    nodes = list(_postgres_nodes(json.loads(plan)[0]["Plan"]))
    in_index = any(column in node.get("Index Cond", "") for node in nodes)
    return in_index and not any(column in node.get("Filter", "") for node in nodes)


@pytest.mark.parametrize(
    "where",
    [GenerationFilter(key_id=KEY, session_id="s20"), GenerationFilter(key_id=KEY, external_user="u17")],
    ids=["session", "user"],
)
async def test_one_keys_page_of_a_user_or_session_compares_the_key_in_the_index(
    connection: AsyncConnection, where: GenerationFilter
) -> None:
    """The session and user indexes end with the key (migration 0009), and PostgreSQL compares
    it there: none of the user's other keys' rows is read from the table (a busy user's page
    took 144 ms under a generic plan before)."""
    plan, walked = await _walked(connection, where)
    assert walked and all(columns[-1] == "key_id" for columns in walked), (walked, plan)
    if connection.dialect.name == "postgresql":  # SQLite's plan names no index conditions
        assert _compared_in_the_index(plan, "key_id"), plan


@pytest.mark.parametrize(
    "where",
    [GenerationFilter(key_id=KEY, model="m-03"), GenerationFilter(model="m-03")],
    ids=["one key", "everyone"],
)
async def test_a_models_page_compares_the_model_in_the_index_on_postgresql(
    connection: AsyncConnection, where: GenerationFilter
) -> None:
    """PostgreSQL's key and time indexes end with the model (migration 0009): a model the key
    never used walked the whole table before. SQLite's stay as they were."""
    plan, walked = await _walked(connection, where)
    assert walked, plan
    if connection.dialect.name == "postgresql":
        assert all(columns[-1] == "model" for columns in walked), (walked, plan)
        assert _compared_in_the_index(plan, "model"), plan
    else:
        assert all("model" not in columns for columns in walked), (walked, plan)


async def test_one_keys_page_of_a_metadata_pair_walks_the_keys_own_pairs(connection: AsyncConnection) -> None:
    """PostgreSQL walks the pairs by key (migration 0009): none of the pair's other keys' rows
    is read from the table. SQLite's pairs table is its primary key, the key in every row."""
    where = GenerationFilter(key_id=KEY, metadata=(("team", "a"),))
    plan, used, bad = await plan_of(connection, list_statement(where, connection.dialect.name, limit=101))
    assert not bad, plan
    if connection.dialect.name == "postgresql":
        assert used & {_PAIRS_BY_KEY}, plan
        assert _compared_in_the_index(plan, "key_id"), plan
    else:
        assert "SEARCH generation_metadata USING PRIMARY KEY" in plan, plan
