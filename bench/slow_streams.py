"""Many slow streams at once: the gateway's CPU per relayed chunk and memory per open stream.

    .venv/bin/python bench/slow_streams.py [--streams 2000] [--chunks 500] [--interval-ms 20]

Starts the fake upstream, whose model ``slow`` streams ``--chunks`` content chunks one every
``--interval-ms`` (10 s by default), and ``genledger serve`` (SQLite, or ``--database
postgres``) with that model as ``bench/slow``. After a warm-up, it opens ``--streams``
streams at once through the gateway (over ``--ramp`` seconds) and reads each to ``[DONE]``,
sampling the gateway's RSS every 0.25 s. It reports the gateway's CPU per relayed event
(the whole phase's CPU over the events the client received), its RSS per open stream (the
sample with the most streams open, over the RSS before they opened), and checks that every
stream has its row (streamed, not cancelled) in the ledger.

Every process's open-file limit is raised (each stream holds a client socket and an upstream
one in the gateway), and the provider's ``max_connections`` (default 256: the streams past it
would wait for a pooled connection) is set to ``--streams``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from harness import (
    MODEL_SLUG,
    BenchError,
    Children,
    create_key,
    percentile,
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
from loadgen import DONE, Target, make_session, warm_up
from yarl import URL

SLOW_SLUG: Final = "bench/slow"
SAMPLE_S: Final = 0.25


@dataclass
class Streams:
    """What the client saw of the slow streams, and the gateway's RSS while they ran."""

    opened: int = 0  # headers received
    finished: int = 0
    completed: int = 0  # with [DONE] and no error
    events: int = 0
    durations: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # (t, open, RSS MiB)

    @property
    def open_now(self) -> int:
        return self.opened - self.finished


async def one_stream(session: aiohttp.ClientSession, url: URL, body: bytes, streams: Streams) -> None:
    started = time.perf_counter()
    events, tail, ok = 0, b"", False
    try:
        async with session.post(url, data=body) as response:
            streams.opened += 1
            try:
                if response.status != 200:
                    raise BenchError(f"HTTP {response.status}: {(await response.read())[:200]!r}")
                while piece := await response.content.readany():
                    events += piece.count(b"data:")
                    tail = (tail + piece)[-len(DONE) :]
                    if b'"error":{' in piece:
                        raise BenchError(f"an error event: {piece[:200]!r}")
                ok = tail == DONE
            finally:
                streams.finished += 1
    except (aiohttp.ClientError, TimeoutError, BenchError) as exc:
        if len(streams.failures) < 5:
            streams.failures.append(f"{type(exc).__name__}: {exc}")
    streams.events += events
    if ok:
        streams.completed += 1
        streams.durations.append(time.perf_counter() - started)
    elif len(streams.failures) < 5:
        streams.failures.append(f"a stream ended without [DONE] after {events} events")


async def sample(pid: int, streams: Streams, stop: asyncio.Event) -> None:
    started = time.perf_counter()
    while not stop.is_set():
        streams.samples.append((round(time.perf_counter() - started, 2), streams.open_now, rss_mib(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_S)


async def bench(args: argparse.Namespace, children: Children, workdir: Path) -> dict[str, Any]:
    async with database(args.database, workdir) as ledger:
        try:
            return await _bench(args, children, workdir, ledger)
        finally:
            children.stop_all()


async def _bench(
    args: argparse.Namespace, children: Children, workdir: Path, ledger: Database
) -> dict[str, Any]:
    fd_limit = raise_fd_limit(4 * args.streams + 1024)
    load_before = uptime()
    upstream, upstream_base = start_upstream(children, workdir)  # its CPU: is it the bottleneck?
    set_behavior(
        upstream_base,
        {"behavior": "ok", "tokens": args.chunks, "chunk_delay_ms": args.interval_ms, "model": "slow"},
    )
    extra = (
        f'[models."{SLOW_SLUG}"]\nprovider = "fake"\nupstream_model = "slow"\n'
        'prompt_price = "0.15"\ncompletion_price = "0.60"\n'
    )
    # The default pool (256 connections a provider) would queue every stream past the 256th.
    options = f"max_connections = {args.streams + 64}\nstream_idle_timeout = 120\ntimeout = 120\n"
    config = write_config(workdir, ledger.url, upstream_base, provider_options=options, extra=extra)
    key = create_key(workdir, config)
    gateway, gateway_url = start_gateway(children, workdir, config)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    chat_url = URL(gateway_url + "/api/v1/chat/completions")
    warm_body = json.dumps({"model": MODEL_SLUG, "messages": [{"role": "user", "content": "hi"}]}).encode()
    warm_stream = json.dumps(
        {"model": MODEL_SLUG, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    slow_body = json.dumps(
        {
            "model": SLOW_SLUG,
            "messages": [{"role": "user", "content": "Tell me a long story."}],
            "stream": True,
        }
    ).encode()
    async with make_session(64, headers) as session:
        warm = Target("genledger", chat_url, session, {False: warm_body, True: warm_stream}, headers)
        await warm_up(warm, 64)
    await asyncio.sleep(1.0)
    before_rows = await ledger.count_generations()
    rss_before = rss_mib(gateway.pid)
    streams = Streams()
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=180)
    print(f"opening {args.streams} streams over {args.ramp:g} s ...", file=sys.stderr, flush=True)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as client:
        sampler = asyncio.create_task(sample(gateway.pid, streams, stop))
        cpu_before, upstream_before = gateway.cpu_seconds(), upstream.cpu_seconds()
        started = time.perf_counter()
        tasks = []
        for index in range(args.streams):
            tasks.append(asyncio.create_task(one_stream(client, chat_url, slow_body, streams)))
            if args.ramp:
                await asyncio.sleep(
                    max(started + args.ramp * (index + 1) / args.streams - time.perf_counter(), 0)
                )
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
        cpu = gateway.cpu_seconds() - cpu_before
        upstream_cpu = upstream.cpu_seconds() - upstream_before
        stop.set()
        await sampler
    gateway.check_alive()
    await asyncio.sleep(1.0)
    after_rows = await ledger.count_generations()
    rows = {k: after_rows[k] - before_rows[k] for k in after_rows}
    most_open = max(streams.samples, key=lambda s: (s[1], s[2]))
    peak = max(s[2] for s in streams.samples)
    passed = (
        streams.completed == args.streams
        and rows["rows"] == args.streams
        and rows["streamed_rows"] == args.streams
        and rows["cancelled_rows"] == 0
    )
    return {
        "meta": {
            "uptime_before": load_before,
            "uptime_after": uptime(),
            "database": args.database,
            "streams": args.streams,
            "chunks": args.chunks,
            "interval_ms": args.interval_ms,
            "ramp_s": args.ramp,
            "fd_limit": fd_limit,
        },
        "wall_s": round(wall, 2),
        "stream_seconds_p50": round(statistics.median(streams.durations), 2) if streams.durations else None,
        "stream_seconds_p99": round(percentile(streams.durations, 99), 2) if streams.durations else None,
        "events_relayed": streams.events,
        "events_per_s": round(streams.events / wall),
        "gateway_cpu_s": round(cpu, 2),
        "gateway_cpu_us_per_event": round(cpu / streams.events * 1e6, 2) if streams.events else None,
        "gateway_cores_busy": round(cpu / wall, 2),
        "upstream_cores_busy": round(upstream_cpu / wall, 2),
        "rss_before_mib": rss_before,
        "rss_most_open_mib": most_open[2],
        "most_open": most_open[1],
        "rss_peak_mib": peak,
        "rss_kib_per_open_stream": round((most_open[2] - rss_before) * 1024 / most_open[1], 1)
        if most_open[1]
        else None,
        "rss_samples": streams.samples[:: max(len(streams.samples) // 40, 1)],
        "ledger": {**rows, "completed_streams": streams.completed, "passed": passed},
        "failures": streams.failures,
    }


def report(result: dict[str, Any]) -> str:
    meta, ledger = result["meta"], result["ledger"]
    return "\n".join(
        [
            f"{meta['streams']} streams of {meta['chunks']} chunks every {meta['interval_ms']} ms "
            f"through genledger ({meta['database']}), opened over {meta['ramp_s']} s; "
            f"fd limit {meta['fd_limit']}",
            f"host before: {meta['uptime_before']}",
            f"host after:  {meta['uptime_after']}",
            f"wall {result['wall_s']} s; a stream took {result['stream_seconds_p50']} s p50, "
            f"{result['stream_seconds_p99']} s p99 (the upstream's pace alone: "
            f"{meta['chunks'] * meta['interval_ms'] / 1000:g} s)",
            f"events relayed {result['events_relayed']} ({result['events_per_s']}/s); gateway CPU "
            f"{result['gateway_cpu_s']} s ({result['gateway_cores_busy']} cores) = "
            f"{result['gateway_cpu_us_per_event']} us per event, the streams' own set-up included; "
            f"the fake upstream kept {result['upstream_cores_busy']} cores busy",
            f"gateway RSS {result['rss_before_mib']} MiB before, {result['rss_most_open_mib']} MiB with "
            f"{result['most_open']} streams open (peak {result['rss_peak_mib']} MiB): "
            f"{result['rss_kib_per_open_stream']} KiB per open stream",
            f"ledger: {ledger['rows']} new rows ({ledger['streamed_rows']} streamed, "
            f"{ledger['cancelled_rows']} cancelled) for {ledger['completed_streams']} completed streams -> "
            f"{'OK' if ledger['passed'] else 'FAILED'}",
            *([f"first failures: {result['failures']}"] if result["failures"] else []),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=500, help="content chunks a stream carries")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="the upstream's pause between chunks")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which the streams open")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run_bench(lambda children, workdir: bench(args, children, workdir), "genledger-slow-")
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ledger"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
