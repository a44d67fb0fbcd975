"""``genledger serve --workers N``: throughput and latency at 32 connections, one worker against two.

    .venv/bin/python bench/workers.py --database postgres --workers 1 --workers 2 --rounds 3

Per round, each worker count in turn (order reversed every other round): a gateway on a
fresh ledger (PostgreSQL or SQLite, rate limits in Redis as several workers need), ``wrk``
(or the Python generator) at ``--concurrency`` connections for ``--seconds``, non-streamed;
requests/s, p50 and p99, and CPU per request of the whole process tree (parent and workers).
Every figure comes with the ledger check: rows = successful requests (+ wrk's in-flight drops).
The fake upstream, the load generator and the gateway share the machine's cores: on two cores
a second worker competes with them, which is what the ratio shows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from gateway_overhead import chat_body
from harness import (
    MODEL_SLUG,
    BenchError,
    Children,
    create_key,
    run_bench,
    start_gateway,
    start_upstream,
    uptime,
    write_config,
)
from ledger_count import database
from loadgen import Target, make_session, throughput, warm_up, wrk_available
from yarl import URL


async def one(
    children: Children, workdir: Path, args: argparse.Namespace, workers: int, tag: str
) -> dict[str, Any]:
    _, upstream = start_upstream(children, workdir, name=f"upstream-{tag}")
    async with database(args.database, workdir / tag) as ledger:
        folder = workdir / tag
        folder.mkdir(exist_ok=True)
        extra = f'[limits]\nbackend = "redis"\nredis_url = "{args.redis_url}"\n'
        config = write_config(folder, ledger.url, upstream, extra=extra)
        key = create_key(folder, config)
        gateway, url = start_gateway(
            children, folder, config, name=f"gateway-{tag}", args=["--workers", str(workers)]
        )
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        try:
            async with make_session(args.concurrency, headers) as session:
                target = Target(
                    tag,
                    URL(url + "/api/v1/chat/completions"),
                    session,
                    {False: chat_body(MODEL_SLUG, False)},
                    headers,
                )
                await warm_up(target, args.concurrency)
                cpu = gateway.cpu_seconds(tree=True)
                outcome = await throughput(
                    target, False, args.concurrency, args.seconds, folder, use_wrk=args.use_wrk
                )
                cpu = gateway.cpu_seconds(tree=True) - cpu
        finally:
            gateway.stop()
        rows = (await ledger.count_generations())["rows"]
        ok = sum(target.ok.values())
        if not ok <= rows <= ok + target.dropped or target.failed:
            raise BenchError(
                f"ledger check: {rows} rows for {ok} successes (+{target.dropped} dropped), "
                f"{target.failures[:3]}"
            )
    return {**outcome, "cpu_ms_per_request": 1000 * cpu / max(outcome["ok"], 1), "rows": rows, "ok": ok}


async def bench(children: Children, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[int, list[dict[str, Any]]] = {w: [] for w in args.workers}
    for round_ in range(args.rounds):
        order = args.workers if round_ % 2 == 0 else list(reversed(args.workers))
        for workers in order:
            figures = await one(children, workdir, args, workers, f"w{workers}-r{round_}")
            results[workers].append(figures)
            print(
                f"round {round_ + 1}  workers={workers}  {figures['rps']:.0f} req/s  "
                f"p50 {figures['load_p50_ms']:.2f} ms  p99 {figures['load_p99_ms']:.2f} ms  "
                f"CPU {figures['cpu_ms_per_request']:.3f} ms/req  "
                f"ledger {figures['rows']} rows / {figures['ok']} ok",
                flush=True,
            )
    summary = {
        w: {
            k: statistics.median(r[k] for r in runs)
            for k in ("rps", "load_p50_ms", "load_p99_ms", "cpu_ms_per_request")
        }
        for w, runs in results.items()
    }
    base = summary[args.workers[0]]
    for w, figures in summary.items():
        speedup = figures["rps"] / base["rps"]
        tail = figures["load_p99_ms"] / figures["load_p50_ms"]
        print(
            f"median  workers={w}  {figures['rps']:.0f} req/s (x{speedup:.2f})  p99/p50 {tail:.1f}  "
            f"CPU {figures['cpu_ms_per_request']:.3f} ms/req"
        )
    print(f"load: {uptime()}")
    return {"database": args.database, "runs": results, "median": summary}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--workers", type=int, action="append", help="worker counts to compare (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.workers = args.workers or [1, 2]
    args.use_wrk = args.generator == "wrk" or (args.generator == "auto" and wrk_available())
    result = run_bench(lambda children, workdir: bench(children, workdir, args), "genledger-workers-")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
