"""How long the dashboard's pages take at the server on a big ledger (target: under 100 ms).

Reuses ``ledger_reads.py``'s bulk loader (the same 90 days of realistic rows, and its
``--keep`` database), starts a real ``genledger serve`` on it, signs in through the sign-in
form with the management key and with the busiest ordinary key, and times a bounded number of
sequential GETs of each page. The figure is the gateway's own ``Server-Timing: app;dur=``
(the page is rendered before it is sent); the client's time to the last byte is beside it.

    cd /work/main && .venv/bin/python bench/dashboard_pages.py [--rows N] [--requests N] [--keep]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
from harness import (
    BenchError,
    Children,
    percentile,
    revision,
    run_bench,
    start_gateway,
    write_config,
)
from ledger_reads import Database, Shape, database, load, load_average, roll_up, rotate, sample

TARGET_MS: Final = 100.0
CASE_SECONDS: Final = 60.0
WARMUP: Final = 2
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_TIMING = re.compile(r"app;dur=([0-9.]+)")


async def sign_in(base: str, secret: str) -> aiohttp.ClientSession:
    """A browser-like session (cookies kept) signed in with ``secret`` through the form."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # 127.0.0.1
    async with session.get(f"{base}/dashboard/sign-in") as form:
        token = _CSRF.search(await form.text())
    if token is None:
        raise BenchError("the sign-in page has no CSRF token")
    async with session.post(
        f"{base}/dashboard/sign-in", data={"csrf": token.group(1), "key": secret}, allow_redirects=False
    ) as signed:
        if signed.status != 303:
            raise BenchError(f"sign-in answered {signed.status}")
    return session


async def time_page(session: aiohttp.ClientSession, base: str, paths: list[str], n: int) -> dict[str, Any]:
    server: list[float] = []
    client: list[float] = []
    failures: list[str] = []
    deadline = time.monotonic() + CASE_SECONDS
    for i in range(WARMUP + n):
        path = paths[i % len(paths)]
        started = time.perf_counter()
        async with session.get(f"{base}{path}", allow_redirects=False) as response:
            await response.read()
            elapsed = (time.perf_counter() - started) * 1000
            timing = _TIMING.search(response.headers.get("server-timing", ""))
            if response.status != 200 or timing is None:
                failures.append(f"{response.status} {path}")
                if len(failures) >= 3:
                    break
                continue
        if i >= WARMUP:
            server.append(float(timing.group(1)))
            client.append(elapsed)
        if time.monotonic() > deadline and len(server) >= 3:
            break
    if not server:
        return {"requests": 0, "failures": failures}
    return {
        "requests": len(server),
        "server_p50_ms": round(statistics.median(server), 2),
        "server_p99_ms": round(percentile(server, 99), 2),
        "client_p50_ms": round(statistics.median(client), 2),
        "failures": failures,
    }


async def first_ids(session: aiohttp.ClientSession, base: str, query: str) -> list[str]:
    async with session.get(f"{base}/dashboard/generations?{query}") as response:
        return re.findall(r'href="/dashboard/generations/(gen-[^"]+)"', await response.text())


async def bench(args: argparse.Namespace, children: Children, workdir: Path) -> dict[str, Any]:
    async with database("sqlite", args.rows, args.keep) as (db, loaded):
        try:
            return await _bench(args, children, workdir, db, loaded)
        finally:
            children.stop_all()


async def _bench(
    args: argparse.Namespace, children: Children, workdir: Path, db: Database, loaded: bool
) -> dict[str, Any]:
    if not loaded:
        print(f"loading {args.rows:,} rows into {db.name} ...", file=sys.stderr, flush=True)
        print(f"  loaded: {await load(db, args.rows, True)}", file=sys.stderr, flush=True)
    ordinary, management = await rotate(db.url, "readbench-00"), await rotate(db.url, "readbench-admin")
    values = await sample(db, 20)
    load_before = load_average()
    rolled = await roll_up(db.url, values["last"], 5)
    model = Shape.make([]).models[0][0]
    team, value = next((k, v) for k, v in values["pairs"] if k == "team")
    config = write_config(workdir, db.url, "http://127.0.0.1:9/v1")  # pages never call upstream
    _, base = start_gateway(children, workdir, config)
    admin, own = await sign_in(base, management), await sign_in(base, ordinary)
    results: dict[str, Any] = {}
    try:
        (admin_hash,) = re.findall(r'<option value="([0-9a-f]{64})">readbench-00<', await _text(admin, base))
        ids = await first_ids(own, base, "")
        since = (values["last"] - timedelta(days=7)).isoformat().replace("+00:00", "")
        pages: list[tuple[str, aiohttp.ClientSession, list[str]]] = [
            *[
                (f"overview {w}, {who}", session, [f"/dashboard/overview?window={w}"])
                for w in ("24h", "7d", "30d")
                for who, session in (("management", admin), ("ordinary", own))
            ],
            ("generations, management, no filter", admin, ["/dashboard/generations"]),
            ("generations, ordinary, no filter", own, ["/dashboard/generations"]),
            (
                "generations, management, model",
                admin,
                [f"/dashboard/generations?{urlencode({'model': model})}"],
            ),
            (
                "generations, management, metadata",
                admin,
                [f"/dashboard/generations?{urlencode({f'metadata[{team}]': value})}"],
            ),
            (
                "generations, management, last 7 days",
                admin,
                [f"/dashboard/generations?{urlencode({'created_after': since})}"],
            ),
            ("generation detail, ordinary", own, [f"/dashboard/generations/{i}" for i in ids[:20]]),
            ("keys, management (51 keys)", admin, ["/dashboard/keys"]),
            ("one key's page, management", admin, [f"/dashboard/keys/{admin_hash}"]),
        ]
        for name, session, paths in pages:
            results[name] = await time_page(session, base, paths, args.requests)
            r = results[name]
            print(
                f"  {name}: {r.get('server_p50_ms')} / {r.get('server_p99_ms')} ms",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await admin.close()
        await own.close()
    return {
        "meta": {
            "rows": args.rows,
            "requests": args.requests,
            "revision": revision(),
            "database": "sqlite",
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "rollup": rolled,
        "pages": results,
    }


async def _text(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/dashboard/generations?limit=1") as response:
        return await response.text()


def report(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        f"genledger dashboard pages: SQLite, {meta['rows']:,} generations; genledger {meta['revision']}",
        f"load average {meta['load_average_before']} before, {meta['load_average_after']} after; "
        f"rollup {result['rollup']}",
        f"  {'page':44}{'n':>4}{'server p50':>12}{'server p99':>12}{'client p50':>12}"
        f"  target < {TARGET_MS:g} ms",
    ]
    for name, r in result["pages"].items():
        if not r.get("requests"):
            lines.append(f"  {name:44} FAILED {r.get('failures')}")
            continue
        verdict = "met" if r["server_p50_ms"] < TARGET_MS else "MISSED"
        lines.append(
            f"  {name:44}{r['requests']:>4}{r['server_p50_ms']:>12.2f}{r['server_p99_ms']:>12.2f}"
            f"{r['client_p50_ms']:>12.2f}  {verdict}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="generations to load")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument("--keep", action="store_true", help="as ledger_reads.py's --keep (shared database)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.requests < 1:
        parser.error("--rows must be at least 1000 and --requests at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Given to the gateway, so that it writes no secret file beside the bench's database.
    os.environ.setdefault("GENLEDGER_DASHBOARD_SECRET", secrets.token_hex(32))
    result = run_bench(lambda children, workdir: bench(args, children, workdir), "genledger-dashbench-")
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 1 if any(not r.get("requests") for r in result["pages"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
