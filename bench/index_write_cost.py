"""What each read index costs the hot write path: the sink's single-record commit, with and without it.

Loads ``--rows`` generations (``ledger_reads.rows``) into a fresh ledger, then times
``--writes`` single-record commits through the gateway's own sink (``SQLiteSink`` commits on
the event loop; ``PostgresSink`` is one statement), first with every index, then with each
index of ``generations`` dropped in turn (recreated after). See ``bench/README.md``.

    cd /work/main && .venv/bin/python bench/index_write_cost.py [--database sqlite|postgres]
        [--rows N] [--writes N] [--rounds R]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import BenchError, run_loop
from ledger_reads import Database, database, load

from genledger.core.generation import Generation
from genledger.core.ids import new_generation_id
from genledger.ledger.generations import Settlement
from genledger.ledger.postgres_sink import PostgresSink
from genledger.ledger.sinks import SQLiteSink


async def _writes(sink: Any, template: Generation, n: int, server: Any) -> tuple[float, float]:
    """Microseconds per single-record commit, over ``n`` commits: wall time, and CPU time (this
    process's, plus the PostgreSQL server's for its connection when ``server`` is its pid)."""
    started, cpu = time.perf_counter(), time.process_time() + _server_cpu(server)
    for i in range(n):
        generation = dataclasses.replace(
            template,
            id=new_generation_id(),
            created_at=datetime.now(UTC),
            session_id=f"s-{i // 10}" if i % 3 else None,
            external_user=f"user-{i % 500}" if i % 2 else None,
            metadata={"team": "search"} if i % 10 < 3 else None,
            # As often as in ledger_reads' ledger: 2% errors, 1% cancelled streams.
            finish_reason="error" if i % 50 == 7 else "stop",
            cancelled=i % 100 == 11,
        )
        await sink.commit([Settlement(generation)])
    wall = (time.perf_counter() - started) / n * 1e6
    return wall, (time.process_time() + _server_cpu(server) - cpu) / n * 1e6


def _server_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a PostgreSQL backend, from ``/proc``; 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _indexes(db: Database) -> list[tuple[str, str]]:
    if db.kind == "sqlite":
        found = await db.fetch(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'generations' "
            "AND sql IS NOT NULL"
        )
    else:
        found = await db.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'generations' "
            "AND indexname <> 'generations_pkey'"
        )
    return [(str(name), str(sql)) for name, sql in found]


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    async with database(args.database, args.rows, keep=False) as (db, loaded):
        if not loaded:
            await load(db, args.rows, rebuild_indexes=True)
        (key_id,), *_ = await db.fetch("SELECT id FROM api_keys WHERE name = 'readbench-01'")
        template = Generation(
            id="",
            key_id=key_id,
            created_at=datetime.now(UTC),
            model="openai/model-03",
            provider_name="OpenAI",
            total_cost_pico=123_000_000,
            charge_pico=123_000_000,
            streamed=False,
            cancelled=False,
            finish_reason="stop",
            tokens_prompt=300,
            tokens_completion=200,
            origin="",
            user_agent="bench/1.0",
        )
        sink: Any = SQLiteSink(db.url) if db.kind == "sqlite" else PostgresSink(db.url)
        indexes = await _indexes(db)
        figures: dict[str, list[tuple[float, float]]] = {"all indexes": []}
        for name, _ in indexes:
            figures[f"without {name}"] = []
        try:
            await sink.commit([Settlement(dataclasses.replace(template, id=new_generation_id()))])
            server = None
            if db.kind == "postgres":  # the sink's own connection: its backend's CPU is the write's too
                server = await sink._connection.fetchval("SELECT pg_backend_pid()")
            await _writes(sink, template, args.writes, server)  # warm-up
            for _ in range(args.rounds):
                figures["all indexes"].append(await _writes(sink, template, args.writes, server))
                for name, sql in indexes:
                    await db.fetch(f"DROP INDEX {name}")
                    try:
                        figures[f"without {name}"].append(await _writes(sink, template, args.writes, server))
                    finally:
                        await db.fetch(sql)
        finally:
            await sink.close()
        medians = {
            case: (
                round(statistics.median(w for w, _ in values), 1),
                round(statistics.median(c for _, c in values), 1),
            )
            for case, values in figures.items()
        }
        base_wall, base_cpu = medians["all indexes"]
        print(f"  {'us per single-record commit, median of rounds':45}{'wall':>9}{'CPU':>9}")
        for case, (wall, cpu) in medians.items():
            saved = (
                f"  (index costs {base_wall - wall:+.1f} wall, {base_cpu - cpu:+.1f} CPU)"
                if case != "all indexes"
                else ""
            )
            print(f"  {case:45}{wall:>9.1f}{cpu:>9.1f}{saved}")
        return {"database": args.database, "rows": args.rows, "writes": args.writes, "medians_us": medians}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        run_loop(bench(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
