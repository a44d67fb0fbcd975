"""Memory flat over time: a long mixed load through the gateway, its RSS sampled as it goes.

    .venv/bin/python bench/soak.py [--requests 1000000] [--sample-every 100000] [--concurrency 16]
        [--database sqlite|postgres] [--tracemalloc] [--json out.json]

Starts the fake upstream and ``genledger serve``, then sends ``--requests`` requests at
``--concurrency`` connections, in a fixed cycle of 20: 11 non-streamed and 6 streamed chat
completions, 1 stream the caller cancels after its first event (model ``bench/slowish``: the
upstream pauses 10 ms between events, so the gateway is mid-stream when the caller leaves),
and 2 requests (one streamed) to ``bench/failover``, whose first endpoint always answers 503
and whose fallback is healthy (the breaker never opens: every one of them fails over). Every
``--sample-every`` completed requests it reads the gateway's RSS (``VmRSS``); the figure is
the growth from the first sample (after the first ``--sample-every``, when pools, caches and
the allocator have settled) to the last. Target: at most 10%.

With ``--tracemalloc`` the gateway starts tracing at the first sample and a snapshot is
taken in it then and at the last sample (``bench/gateway_launcher.py``, never the product);
the report lists the allocation sites that grew most between the two. tracemalloc slows the
gateway several times over: use it to find what grows, not for the RSS figure.

The ledger check: one row per successful or cancelled request, and no request failed. A
stream the caller cancelled is recorded cancelled, or complete when the gateway had relayed
all of it before it saw the caller leave (a starved gateway can: the stream lasts ~120 ms);
the report shows how each was recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from gateway_launcher import TRACEMALLOC_ENV
from harness import (
    MODEL_SLUG,
    BenchError,
    Child,
    Children,
    create_key,
    raise_fd_limit,
    rss_mib,
    run_bench,
    set_behavior,
    start_gateway,
    start_upstream,
    uptime,
    write_config,
)
from ledger_count import Database, database
from loadgen import DONE, make_session

SLOWISH_SLUG: Final = "bench/slowish"
FAILOVER_SLUG: Final = "bench/failover"
CYCLE: Final = (
    ("plain",) * 11 + ("stream",) * 6 + ("cancel",) + ("failover_plain", "failover_stream")
)  # fmt: skip
TARGET_GROWTH_PCT: Final = 10.0
SNAPSHOT_TIMEOUT_S: Final = 300.0
TOP_SITES: Final = 15

_EXTRA_CONFIG: Final = f"""[providers.broken]
kind = "openai"
base_url = "{{upstream}}"
display_name = "Always 503"

[models."{SLOWISH_SLUG}"]
provider = "fake"
upstream_model = "slowish"
prompt_price = "0.15"
completion_price = "0.60"

[models."{FAILOVER_SLUG}"]
provider = "broken"
upstream_model = "broken"
prompt_price = "0.15"
completion_price = "0.60"
fallbacks = [{{ provider = "fake", upstream_model = "fast" }}]

[routing]
breaker_failures = 1000000000
"""


def kind_of(index: int) -> str:
    """The request kind of the ``index``-th request (the cycle of 20)."""
    return CYCLE[index % len(CYCLE)]


def body(kind: str) -> bytes:
    model = {"cancel": SLOWISH_SLUG, "failover_plain": FAILOVER_SLUG, "failover_stream": FAILOVER_SLUG}
    payload: dict[str, Any] = {
        "model": model.get(kind, MODEL_SLUG),
        "messages": [{"role": "user", "content": "Say hello to the soak in a few words."}],
    }
    if kind in ("stream", "cancel", "failover_stream"):
        payload["stream"] = True
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass
class Tally:
    ok: dict[str, int] = field(default_factory=lambda: dict.fromkeys(set(CYCLE), 0))
    cancelled: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(self.ok.values()) + self.cancelled + self.failed

    def fail(self, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < 5:
            self.failures.append(reason)


async def one(session: aiohttp.ClientSession, url: str, kind: str, payload: bytes, tally: Tally) -> None:
    try:
        async with session.post(url, data=payload) as response:
            if response.status != 200:
                tally.fail(f"{kind}: HTTP {response.status}: {(await response.read())[:200]!r}")
                return
            if kind == "cancel":
                while piece := await response.content.readany():
                    if b"data:" in piece:
                        break
                response.close()  # the connection goes with it: the gateway sees the caller leave
                tally.cancelled += 1
                return
            data = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.fail(f"{kind}: {type(exc).__name__}: {exc}")
        return
    if kind.endswith("stream") and (not data.endswith(DONE) or b'"error":{' in data):
        tally.fail(f"{kind}: a stream without [DONE] or with an error: {data[-200:]!r}")
        return
    tally.ok[kind] += 1


async def snapshot(gateway: Child, prefix: Path, number: int) -> Path:
    """Have the gateway write tracemalloc snapshot ``number`` (``gateway_launcher.py``); its path."""
    path = Path(f"{prefix}.{number}.snapshot")
    gateway.signal(signal.SIGUSR2)
    deadline = time.monotonic() + SNAPSHOT_TIMEOUT_S
    while not os.path.exists(f"{path}.done"):  # noqa: ASYNC240 (a stat every 0.2 s)
        gateway.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"the gateway wrote no snapshot {path} within {SNAPSHOT_TIMEOUT_S:g}s")
        await asyncio.sleep(0.2)
    return path


def grown_sites(first: Path, last: Path) -> list[dict[str, Any]]:
    """The allocation sites (innermost frames of genledger or its libraries) that grew most."""
    before = tracemalloc.Snapshot.load(str(first))
    after = tracemalloc.Snapshot.load(str(last))
    stats = after.compare_to(before, "traceback")
    grown = sorted(stats, key=lambda s: s.size_diff, reverse=True)[:TOP_SITES]
    return [
        {
            "size_diff_kib": round(s.size_diff / 1024, 1),
            "count_diff": s.count_diff,
            "size_kib": round(s.size / 1024, 1),
            "traceback": [f"{frame.filename}:{frame.lineno}" for frame in list(s.traceback)[-6:]],
        }
        for s in grown
    ]


async def bench(args: argparse.Namespace, children: Children, workdir: Path) -> dict[str, Any]:
    async with database(args.database, workdir) as ledger:
        try:
            return await _bench(args, children, workdir, ledger)
        finally:
            children.stop_all()


async def _bench(
    args: argparse.Namespace, children: Children, workdir: Path, ledger: Database
) -> dict[str, Any]:
    raise_fd_limit(4 * args.concurrency + 1024)
    load_before = uptime()
    _, upstream_base = start_upstream(children, workdir)
    set_behavior(upstream_base, {"behavior": "status", "status": 503, "model": "broken"})
    set_behavior(upstream_base, {"behavior": "ok", "chunk_delay_ms": 10, "model": "slowish"})
    extra = _EXTRA_CONFIG.replace("{upstream}", upstream_base)
    config = write_config(workdir, ledger.url, upstream_base, extra=extra)
    key = create_key(workdir, config)
    trace_prefix = workdir / "trace"
    env = {TRACEMALLOC_ENV: str(trace_prefix)} if args.tracemalloc else None
    gateway, gateway_url = start_gateway(children, workdir, config, env=env)
    url = gateway_url + "/api/v1/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    bodies = {kind: body(kind) for kind in set(CYCLE)}
    tally = Tally()
    samples: list[dict[str, Any]] = [{"requests": 0, "rss_mib": rss_mib(gateway.pid), "seconds": 0.0}]
    snapshots: list[Path] = []
    next_index = 0
    next_sample = args.sample_every
    started = time.perf_counter()

    async def take_sample() -> None:
        done = tally.done
        samples.append(
            {
                "requests": done,
                "rss_mib": rss_mib(gateway.pid),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(
            f"  {done:>9} requests, {samples[-1]['seconds']:>7.1f} s: "
            f"gateway RSS {samples[-1]['rss_mib']} MiB",
            file=sys.stderr,
            flush=True,
        )
        if args.tracemalloc and (len(samples) == 2 or done >= args.requests):
            snapshots.append(await snapshot(gateway, trace_prefix, len(snapshots)))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index, next_sample
        while next_index < args.requests:
            kind = kind_of(next_index)
            next_index += 1
            await one(session, url, kind, bodies[kind], tally)
            if tally.done >= next_sample:
                next_sample += args.sample_every
                await take_sample()

    async with make_session(args.concurrency, headers) as session:
        await asyncio.gather(*(worker(session) for _ in range(args.concurrency)))
    wall = time.perf_counter() - started
    if samples[-1]["requests"] != tally.done:
        await take_sample()
    gateway.check_alive()
    await asyncio.sleep(1.0)  # a cancelled stream's row is written as the gateway notices
    counted = await ledger.count_generations()
    # How the caller-cancelled streams were recorded: cancelled, or (when the gateway had
    # relayed the whole stream before it saw the caller leave) complete.
    slowish = await ledger.fetch(
        "SELECT cancelled, finish_reason, COUNT(*), MIN(tokens_completion), MAX(tokens_completion) "
        f"FROM generations WHERE model = '{SLOWISH_SLUG}' GROUP BY cancelled, finish_reason"
    )
    ok = sum(tally.ok.values())
    first, last = samples[1], samples[-1]
    growth = round(100 * (last["rss_mib"] - first["rss_mib"]) / first["rss_mib"], 2)
    checks = {
        **counted,
        "ok": ok,
        "cancelled_by_caller": tally.cancelled,
        "failed": tally.failed,
        "cancelled_recorded_complete": tally.cancelled - counted["cancelled_rows"],
        "cancelled_streams_as_recorded": [list(row) for row in slowish],
        # A row for every request; a cancelled one may be recorded complete (see above), never
        # the other way round.
        "passed": counted["rows"] == ok + tally.cancelled
        and counted["cancelled_rows"] <= tally.cancelled
        and tally.failed == 0,
    }
    return {
        "meta": {
            "uptime_before": load_before,
            "uptime_after": uptime(),
            "database": args.database,
            "requests": args.requests,
            "sample_every": args.sample_every,
            "concurrency": args.concurrency,
            "tracemalloc": args.tracemalloc,
        },
        "wall_s": round(wall, 1),
        "rps": round(tally.done / wall, 1),
        "by_kind": tally.ok,
        "samples": samples,
        "growth_after_first_sample_pct": growth,
        "max_rss_mib": max(s["rss_mib"] for s in samples),
        "flat": growth <= TARGET_GROWTH_PCT,
        "grown_sites": grown_sites(snapshots[0], snapshots[-1]) if len(snapshots) >= 2 else [],
        "ledger": checks,
        "failures": tally.failures,
    }


def report(result: dict[str, Any]) -> str:
    meta, ledger = result["meta"], result["ledger"]
    lines = [
        f"soak: {meta['requests']} requests at {meta['concurrency']} connections through genledger "
        f"({meta['database']}{', tracemalloc on' if meta['tracemalloc'] else ''}); "
        f"{result['wall_s']} s, {result['rps']} req/s",
        f"host before: {meta['uptime_before']}",
        f"host after:  {meta['uptime_after']}",
        f"by kind (successful): {result['by_kind']}; "
        f"cancelled by the caller: {ledger['cancelled_by_caller']}",
        "gateway RSS (MiB) by requests done: "
        + ", ".join(f"{s['requests']}: {s['rss_mib']}" for s in result["samples"]),
        f"growth after the first sample: {result['growth_after_first_sample_pct']}% "
        f"(target <= {TARGET_GROWTH_PCT:g}%) -> {'flat' if result['flat'] else 'GROWS'}",
        f"ledger: {ledger['rows']} rows ({ledger['cancelled_rows']} cancelled) for {ledger['ok']} successful "
        f"and {ledger['cancelled_by_caller']} cancelled requests; failed {ledger['failed']} -> "
        f"{'OK' if ledger['passed'] else 'FAILED'}",
        f"caller-cancelled streams as recorded (cancelled, finish_reason, rows, min/max completion "
        f"tokens): {ledger['cancelled_streams_as_recorded']}",
    ]
    for site in result["grown_sites"]:
        lines.append(
            f"  +{site['size_diff_kib']} KiB (+{site['count_diff']} blocks, {site['size_kib']} KiB now): "
            + " <- ".join(reversed(site["traceback"]))
        )
    if result["failures"]:
        lines.append(f"first failures: {result['failures']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument(
        "--sample-every", type=int, default=None, help="default: 100000, or a tenth of --requests"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="diff tracemalloc snapshots in the gateway"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.sample_every is None:
        args.sample_every = min(100_000, max(args.requests // 10, 1))
    if args.requests < 2 * args.sample_every:
        parser.error("--requests must be at least twice --sample-every (growth is measured after the first)")
    result = run_bench(lambda children, workdir: bench(args, children, workdir), "genledger-soak-")
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ledger"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
