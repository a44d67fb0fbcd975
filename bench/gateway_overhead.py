"""What genledger adds over calling the upstream directly: latency, throughput, CPU, memory.

Starts the fake OpenAI upstream (``tests.fakes.openai_upstream``) and a real gateway
(``genledger serve``) as separate processes, sends the same chat completion (streamed and
not) and the same embeddings request to both, one at a time and then at ``--concurrency``
connections, and checks afterwards that every successful gateway request has its row in the
ledger. See ``bench/README.md``.

    cd /work/main && .venv/bin/python bench/gateway_overhead.py [--requests N] [--seconds S]
        [--concurrency C] [--rounds R] [--database sqlite|postgres] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import select
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, TypeVar

import aiohttp
import asyncpg
from yarl import URL

ROOT: Final = Path(__file__).resolve().parent.parent
MODEL_SLUG: Final = "bench/model"
UPSTREAM_MODEL: Final = "fast"
EMBEDDING_SLUG: Final = "bench/embedding"
UPSTREAM_EMBEDDING_MODEL: Final = "embed"
EMBEDDING_INPUT: Final = ["The first text to embed for the benchmark.", "And a second one."]
PROMPT: Final = [{"role": "user", "content": "Say hello to the benchmark in a few words."}]
DONE: Final = b"data: [DONE]\n\n"
POSTGRES_HOST: Final = "127.0.0.1:5432"
POSTGRES_USERS: Final = ("postgres", "root")  # the first that can log in creates the database
WARMUP_REQUESTS: Final = 200  # sequential, per target and per mode
WARMUP_BURST_PER_WORKER: Final = 5  # then a concurrent burst, so every pool holds C connections
BLOCK: Final = 100  # sequential requests per target before switching to the other
RAMP_S: Final = 0.5  # un-timed start of every throughput phase (connections open, caches fill)
START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0
REQUEST_TIMEOUT_S: Final = 60.0
# The project's targets (the issue): added median latency, sequential, non-streamed; the
# gateway's share of the direct upstream's non-streamed requests/s at 32 connections.
TARGET_ADDED_MEDIAN_MS: Final = 1.0
TARGET_THROUGHPUT_PCT: Final = 8.0
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
MODES: Final = ("non_streamed", "streamed", "embeddings", "responses_non_streamed", "responses_streamed")
STREAMED_MODES: Final = ("streamed", "responses_streamed")
# The Responses modes send the gateway OpenAI's Responses API (translated onto the same chat
# upstream); the direct target gets the chat request the gateway makes of it.

T = TypeVar("T")


class BenchError(RuntimeError):
    """The benchmark could not run (a process did not start, a database is unreachable)."""


# ------------------------------------------------------------------------------------------ processes


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads, from ``/proc/<pid>/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {name} in /proc/{pid}/status")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """A process the benchmark started, in its own session so a terminal's Ctrl-C reaches only us."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.pid)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class Children:
    """Every child process; :meth:`stop_all` is idempotent and stops the newest first."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def spawn(self, name: str, argv: list[str], cwd: Path, log: Path, *, pipe_stdout: bool = False) -> Child:
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else log_file,
                stderr=log_file,
                start_new_session=True,
            )
        child = Child(name, process, log)
        self._children.append(child)
        return child

    def stop_all(self) -> None:
        while self._children:
            self._children.pop().stop()


def start_upstream(
    children: Children, workdir: Path, *options: str, name: str = "upstream"
) -> tuple[Child, str]:
    """A fake OpenAI upstream on a free port, and its base URL (``http://127.0.0.1:PORT/v1``).

    ``options`` go to its command line (e.g. ``--behavior status:500``).
    """
    argv = [sys.executable, "-m", "tests.fakes.openai_upstream", "--port", "0", *options]
    child = children.spawn(f"fake {name}", argv, ROOT, workdir / f"{name}.log", pipe_stdout=True)
    stdout = child.process.stdout
    assert stdout is not None
    ready, _, _ = select.select([stdout], [], [], START_TIMEOUT_S)
    line = stdout.readline().decode().strip() if ready else ""
    if not line.startswith("http://"):
        child.check_alive()
        raise BenchError(f"the fake upstream printed no URL within {START_TIMEOUT_S:g}s: {line!r}")
    return child, line


def write_config(workdir: Path, database_url: str, upstream_base_url: str) -> Path:
    config = workdir / "bench.toml"
    config.write_text(
        f'database_url = "{database_url}"\n\n'
        "[providers.fake]\n"
        'kind = "openai"\n'
        f'base_url = "{upstream_base_url}"\n'
        'display_name = "Fake"\n\n'
        f'[models."{MODEL_SLUG}"]\n'
        'provider = "fake"\n'
        f'upstream_model = "{UPSTREAM_MODEL}"\n'
        'prompt_price = "0.15"\n'
        'completion_price = "0.60"\n\n'
        f'[models."{EMBEDDING_SLUG}"]\n'
        'provider = "fake"\n'
        'kind = "embeddings"\n'
        f'upstream_model = "{UPSTREAM_EMBEDDING_MODEL}"\n'
        'prompt_price = "0.02"\n'
        'completion_price = "0"\n'
    )
    return config


def _genledger_argv() -> list[str]:
    script = Path(sys.executable).with_name("genledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "genledger"]


def create_key(workdir: Path, config: Path) -> str:
    argv = [*_genledger_argv(), "keys", "create", "--name", "bench", "--config", str(config)]
    done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=60)
    lines = done.stdout.split()
    if done.returncode != 0 or not lines:
        raise BenchError(f"genledger keys create failed ({done.returncode}): {done.stderr.strip()}")
    return lines[-1]


def start_gateway(children: Children, workdir: Path, config: Path) -> tuple[Child, str]:
    """``genledger serve`` on a free port, once ``GET /health`` answers; and its URL."""
    port = _free_port()
    options = ["--config", str(config), "--port", str(port), "--log-level", "warning"]
    argv = [*_genledger_argv(), "serve", *options]
    child = children.spawn("gateway", argv, workdir, workdir / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        child.check_alive()
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/health", timeout=1) as response:
            if response.status == 200:
                return child, url
        if time.monotonic() > deadline:
            raise BenchError(f"the gateway did not answer /health within {START_TIMEOUT_S:g}s")
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------- database


@dataclass(frozen=True)
class Database:
    """Where the gateway's ledger lives, and how to count its generations."""

    kind: str
    url: str  # as the gateway's config takes it

    async def count_generations(self) -> dict[str, int]:
        query = (
            "SELECT COUNT(*), "
            "COALESCE(SUM(CASE WHEN streamed THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN cancelled THEN 1 ELSE 0 END), 0) FROM generations"
        )
        if self.kind == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
                total, streamed, cancelled = connection.execute(query).fetchone()
        else:
            connection = await asyncpg.connect(self.url, timeout=10)
            try:
                total, streamed, cancelled = await connection.fetchrow(query)
            finally:
                await connection.close()
        return {"rows": int(total), "streamed_rows": int(streamed), "cancelled_rows": int(cancelled)}


async def _admin_connection() -> tuple[asyncpg.Connection, str]:
    """A connection to the server's ``postgres`` database, and the user that could log in."""
    errors = []
    for user in POSTGRES_USERS:
        url = f"postgresql://{user}@{POSTGRES_HOST}/postgres"
        try:
            return await asyncpg.connect(url, timeout=5), user
        except (OSError, asyncpg.PostgresError) as exc:
            errors.append(f"{url}: {exc}")
    raise BenchError("no PostgreSQL to create the benchmark database in: " + "; ".join(errors))


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[Database]:
    """A fresh PostgreSQL database, dropped (even with open connections) on the way out."""
    admin, user = await _admin_connection()
    name = f"genledger_bench_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield Database("postgres", f"postgresql://{user}@{POSTGRES_HOST}/{name}")
    finally:
        admin, _ = await _admin_connection()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def sqlite_database(workdir: Path) -> AsyncIterator[Database]:
    yield Database("sqlite", f"sqlite:///{workdir / 'bench.db'}")


# --------------------------------------------------------------------------------------- load generator


@dataclass
class Target:
    """One server the load goes to, with its own connection pool and pre-encoded bodies."""

    name: str
    url: URL
    session: aiohttp.ClientSession
    bodies: dict[bool, bytes]  # stream? -> body
    ok: dict[bool, int] = field(default_factory=lambda: {False: 0, True: 0})
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    async def call(self, stream: bool) -> float | None:
        """One request; its latency in seconds (streams: until ``[DONE]`` arrived), None if it failed."""
        try:
            started = time.perf_counter()
            async with self.session.post(self.url, data=self.bodies[stream]) as response:
                if response.status != 200:
                    self._fail(f"HTTP {response.status}: {(await response.read())[:200]!r}")
                    return None
                if not stream:
                    await response.read()
                    elapsed: float | None = time.perf_counter() - started
                else:
                    elapsed = await _read_stream(response.content, started)
                    if elapsed is None:
                        self._fail("stream without [DONE], or with an error event")
                        return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            return None
        self.ok[stream] += 1
        return elapsed

    def _fail(self, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < 5:
            self.failures.append(reason)

    @property
    def total_ok(self) -> int:
        return self.ok[False] + self.ok[True]


async def _read_stream(content: aiohttp.StreamReader, started: float) -> float | None:
    """Read to the end; the time at which ``data: [DONE]`` arrived, None if never or after an error."""
    done_at = 0.0
    tail = b""
    broken = False
    while piece := await content.readany():
        if done_at:
            continue
        broken = broken or b'"error":{' in piece  # a Responses object says "error":null
        tail = (tail + piece)[-len(DONE) :]
        if tail == DONE:
            done_at = time.perf_counter()
    return None if broken or not done_at else done_at - started


def make_session(concurrency: int, headers: dict[str, str]) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=0),
        headers=headers,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )


def chat_body(model: str, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": PROMPT}
    if stream:
        # The gateway asks its upstream for usage on every stream: the direct call does too.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def responses_body(model: str, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "input": PROMPT[0]["content"], "stream": stream}
    return json.dumps(body, separators=(",", ":")).encode()


def embedding_body(model: str) -> bytes:
    return json.dumps({"model": model, "input": EMBEDDING_INPUT}, separators=(",", ":")).encode()


async def sequential(targets: list[Target], stream: bool, n: int) -> dict[str, list[float]]:
    """``n`` requests one at a time per target, alternating blocks so machine noise hits both."""
    latencies: dict[str, list[float]] = {t.name: [] for t in targets}
    for block, start in enumerate(range(0, n, BLOCK)):
        size = min(BLOCK, n - start)
        for target in targets if block % 2 == 0 else reversed(targets):
            record = latencies[target.name].append
            for _ in range(size):
                elapsed = await target.call(stream)
                if elapsed is not None:
                    record(elapsed)
    return latencies


async def throughput(target: Target, stream: bool, concurrency: int, seconds: float) -> float:
    """Requests/s completed within ``seconds`` at ``concurrency`` connections (after an un-timed ramp)."""
    window_start = time.perf_counter() + RAMP_S
    window_end = window_start + seconds

    async def worker() -> int:
        completed = 0
        while time.perf_counter() < window_end:
            elapsed = await target.call(stream)
            now = time.perf_counter()
            if elapsed is not None and window_start <= now <= window_end:
                completed += 1
        return completed

    counts = await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sum(counts) / seconds


async def warm_up(target: Target, concurrency: int) -> None:
    for stream in target.bodies:
        for _ in range(WARMUP_REQUESTS):
            await target.call(stream)

        async def burst(stream: bool = stream) -> None:
            for _ in range(WARMUP_BURST_PER_WORKER):
                await target.call(stream)

        await asyncio.gather(*(burst() for _ in range(concurrency)))
    if target.failed:
        raise BenchError(f"{target.name} fails during warm-up: {target.failures}")


# ---------------------------------------------------------------------------------------------- figures


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


@dataclass(frozen=True)
class _Snapshot:
    gateway_cpu_s: float
    upstream_cpu_s: float
    generator_cpu_s: float
    requests: int


@dataclass
class Meter:
    """CPU time of the gateway, the upstream and this generator per successful request to ``target``."""

    gateway: Child
    upstream: Child
    target: Target

    def snapshot(self) -> _Snapshot:
        return _Snapshot(
            self.gateway.cpu_seconds(), self.upstream.cpu_seconds(), time.process_time(), self.target.total_ok
        )

    async def measure(self, work: Awaitable[T]) -> tuple[T, dict[str, float]]:
        """``work``'s result, and CPU milliseconds per request of each process while it ran."""
        before = self.snapshot()
        result = await work
        after = self.snapshot()
        requests = max(after.requests - before.requests, 1)

        def per_request(seconds: float) -> float:
            return round(seconds / requests * 1000, 4)

        return result, {
            "gateway_cpu_ms_per_request": per_request(after.gateway_cpu_s - before.gateway_cpu_s),
            "upstream_cpu_ms_per_request": per_request(after.upstream_cpu_s - before.upstream_cpu_s),
            "generator_cpu_ms_per_request": per_request(after.generator_cpu_s - before.generator_cpu_s),
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 4)


async def run_round(
    index: int, targets: dict[str, tuple[Target, Target]], meters: dict[str, Meter], args: argparse.Namespace
) -> dict[str, Any]:
    """One round's figures: sequential latency and throughput of each mode (chat non-streamed and
    streamed, embeddings); ``targets`` holds each mode's (direct, gateway) pair."""
    figures: dict[str, Any] = {"sequential": {}, "throughput": {}}
    for mode in MODES:
        direct, gateway = targets[mode]
        stream = mode in STREAMED_MODES
        pair = [direct, gateway] if index % 2 == 0 else [gateway, direct]
        latencies, cpu = await meters[f"gateway/{mode}"].measure(sequential(pair, stream, args.requests))
        if not latencies["direct"] or not latencies["gateway"]:
            raise BenchError(f"no successful {mode} request: {direct.failures} {gateway.failures}")
        seq: dict[str, float] = {}
        for name in ("direct", "gateway"):
            seq[f"{name}_p50_ms"] = _ms(statistics.median(latencies[name]))
            seq[f"{name}_p99_ms"] = _ms(percentile(latencies[name], 99))
        seq["added_p50_ms"] = round(seq["gateway_p50_ms"] - seq["direct_p50_ms"], 4)
        seq["added_p99_ms"] = round(seq["gateway_p99_ms"] - seq["direct_p99_ms"], 4)
        seq["gateway_cpu_ms_per_request"] = cpu["gateway_cpu_ms_per_request"]
        figures["sequential"][mode] = seq

        tput: dict[str, Any] = {}
        for target in pair:
            rate, cpu = await meters[f"{target.name}/{mode}"].measure(
                throughput(target, stream, args.concurrency, args.seconds)
            )
            tput[f"{target.name}_rps"] = round(rate, 1)
            tput[f"{target.name}_cpu"] = cpu
        tput["gateway_pct_of_direct"] = round(100 * tput["gateway_rps"] / tput["direct_rps"], 2)
        figures["throughput"][mode] = tput
        print(
            f"  round {index + 1} {mode:>22}: added p50 {seq['added_p50_ms']:.3f} ms, "
            f"{tput['gateway_rps']:.0f} vs {tput['direct_rps']:.0f} req/s",
            file=sys.stderr,
            flush=True,
        )
    return figures


def median_of_rounds(rounds: list[Any]) -> Any:
    """The same nested shape as one round, every number the median over the rounds."""
    first = rounds[0]
    if isinstance(first, dict):
        return {key: median_of_rounds([r[key] for r in rounds]) for key in first}
    return round(statistics.median(rounds), 4)


# ---------------------------------------------------------------------------------------------- the run


async def bench(args: argparse.Namespace, children: Children, workdir: Path) -> dict[str, Any]:
    database_cm = postgres_database() if args.database == "postgres" else sqlite_database(workdir)
    async with database_cm as database:
        try:
            return await _bench(args, children, workdir, database)
        finally:
            children.stop_all()  # before the database is dropped


async def _bench(
    args: argparse.Namespace, children: Children, workdir: Path, database: Database
) -> dict[str, Any]:
    revision = _revision()  # now: the tree may change while the benchmark runs
    upstream, upstream_base = start_upstream(children, workdir)
    config = write_config(workdir, database.url, upstream_base)
    key = create_key(workdir, config)
    gateway_process, gateway_url = start_gateway(children, workdir, config)
    json_headers = {"Content-Type": "application/json"}
    async with (
        make_session(args.concurrency, json_headers) as direct_session,
        make_session(args.concurrency, {**json_headers, "Authorization": f"Bearer {key}"}) as gateway_session,
    ):
        direct = Target(
            "direct",
            URL(upstream_base + "/chat/completions"),
            direct_session,
            {stream: chat_body(UPSTREAM_MODEL, stream) for stream in (False, True)},
        )
        gateway = Target(
            "gateway",
            URL(gateway_url + "/api/v1/chat/completions"),
            gateway_session,
            {stream: chat_body(MODEL_SLUG, stream) for stream in (False, True)},
        )
        direct_embeddings = Target(
            "direct",
            URL(upstream_base + "/embeddings"),
            direct_session,
            {False: embedding_body(UPSTREAM_EMBEDDING_MODEL)},
        )
        gateway_embeddings = Target(
            "gateway",
            URL(gateway_url + "/api/v1/embeddings"),
            gateway_session,
            {False: embedding_body(EMBEDDING_SLUG)},
        )
        gateway_responses = Target(
            "gateway",
            URL(gateway_url + "/api/v1/responses"),
            gateway_session,
            {stream: responses_body(MODEL_SLUG, stream) for stream in (False, True)},
        )
        targets = {
            "non_streamed": (direct, gateway),
            "streamed": (direct, gateway),
            "embeddings": (direct_embeddings, gateway_embeddings),
            "responses_non_streamed": (direct, gateway_responses),
            "responses_streamed": (direct, gateway_responses),
        }
        print(f"warming up ({args.database}) ...", file=sys.stderr, flush=True)
        for target in (direct, gateway, direct_embeddings, gateway_embeddings, gateway_responses):
            await warm_up(target, args.concurrency)
        meters = {
            f"{t.name}/{mode}": Meter(gateway_process, upstream, t)
            for mode, pair in targets.items()
            for t in pair
        }
        rounds = [await run_round(i, targets, meters, args) for i in range(args.rounds)]
    for child in (gateway_process, upstream):
        child.check_alive()
    # Counted while the gateway still runs: each row was committed before its answer.
    counted = await database.count_generations()
    # Memory as a ratio too: the baseline is the fake upstream, a Python aiohttp server that
    # served the same requests (and twice as many: direct and through the gateway).
    peak_rss_mib = {
        name: round(_status_kib(child.pid, "VmHWM") / 1024, 1)
        for name, child in (("gateway", gateway_process), ("upstream", upstream))
    }
    checks = durability(
        counted, [direct, direct_embeddings], [gateway, gateway_embeddings, gateway_responses]
    )
    return assemble(args, revision, rounds, checks, peak_rss_mib)


def durability(counted: dict[str, int], directs: list[Target], gateways: list[Target]) -> dict[str, Any]:
    """Every successful gateway request has exactly its row in the ledger, and nothing failed."""
    everyone = directs + gateways
    figures: dict[str, Any] = {
        **counted,
        "gateway_ok": sum(g.total_ok for g in gateways),
        "gateway_ok_streamed": sum(g.ok[True] for g in gateways),
        "non_200_or_failed": sum(t.failed for t in everyone),
        "failures": [failure for t in everyone for failure in t.failures],
    }
    figures["passed"] = (
        counted["rows"] == figures["gateway_ok"]
        and counted["streamed_rows"] == figures["gateway_ok_streamed"]
        and counted["cancelled_rows"] == 0
        and figures["non_200_or_failed"] == 0
    )
    return figures


def _revision() -> str:
    """The checkout's commit, ``+dirty`` when ``src/`` has changes (other engineers edit it live)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def assemble(
    args: argparse.Namespace,
    revision: str,
    rounds: list[dict[str, Any]],
    checks: dict[str, Any],
    peak_rss_mib: dict[str, float],
) -> dict[str, Any]:
    summary = median_of_rounds(rounds)
    added = summary["sequential"]["non_streamed"]["added_p50_ms"]
    share = summary["throughput"]["non_streamed"]["gateway_pct_of_direct"]
    return {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": args.database,
            "revision": revision,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "requests": args.requests,
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
        },
        "median_of_rounds": summary,
        "rounds": rounds,
        "gateway_peak_rss_mib": peak_rss_mib["gateway"],
        "upstream_peak_rss_mib": peak_rss_mib["upstream"],
        "gateway_rss_vs_upstream": round(peak_rss_mib["gateway"] / peak_rss_mib["upstream"], 2),
        "durability": checks,
        "targets": {
            "added_median_ms": {"limit": TARGET_ADDED_MEDIAN_MS, "measured": added},
            "throughput_pct": {"limit": TARGET_THROUGHPUT_PCT, "measured": share},
            "added_median_met": added <= TARGET_ADDED_MEDIAN_MS,
            "throughput_met": share >= TARGET_THROUGHPUT_PCT,
        },
    }


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(result: dict[str, Any]) -> str:
    meta, summary = result["meta"], result["median_of_rounds"]
    lines = [
        f"genledger gateway overhead: {meta['database']}, {meta['cpus']} CPUs shared by generator, "
        f"gateway and upstream; median of {meta['rounds']} rounds; genledger {meta['revision']}",
        "",
        f"sequential, {meta['requests']} requests per round and target (ms)",
        f"  {'':24}{'direct p50':>11}{'p99':>9}{'gateway p50':>13}{'p99':>9}"
        f"{'added p50':>11}{'p99':>9}{'gw CPU/req':>12}",
    ]
    for mode in MODES:
        s = summary["sequential"][mode]
        lines.append(
            f"  {mode:24}{s['direct_p50_ms']:>11.3f}{s['direct_p99_ms']:>9.3f}{s['gateway_p50_ms']:>13.3f}"
            f"{s['gateway_p99_ms']:>9.3f}{s['added_p50_ms']:>11.3f}{s['added_p99_ms']:>9.3f}"
            f"{s['gateway_cpu_ms_per_request']:>12.3f}"
        )
    lines += [
        "",
        f"throughput, {meta['concurrency']} connections, {meta['seconds']:g} s per phase (req/s; CPU ms/req)",
        f"  {'':24}{'direct':>9}{'gateway':>9}{'gw/direct':>11}"
        f"{'gw CPU':>9}{'upstr CPU':>11}{'gen CPU':>9}   {'direct: upstr':>13}{'gen':>7}",
    ]
    for mode in MODES:
        t = summary["throughput"][mode]
        gw, dc = t["gateway_cpu"], t["direct_cpu"]
        lines.append(
            f"  {mode:24}{t['direct_rps']:>9.0f}{t['gateway_rps']:>9.0f}{t['gateway_pct_of_direct']:>10.1f}%"
            f"{gw['gateway_cpu_ms_per_request']:>9.3f}{gw['upstream_cpu_ms_per_request']:>11.3f}"
            f"{gw['generator_cpu_ms_per_request']:>9.3f}   {dc['upstream_cpu_ms_per_request']:>13.3f}"
            f"{dc['generator_cpu_ms_per_request']:>7.3f}"
        )
    d, targets = result["durability"], result["targets"]
    lines += [
        "",
        f"gateway peak RSS (VmHWM): {result['gateway_peak_rss_mib']} MiB, "
        f"{result['gateway_rss_vs_upstream']}x the fake upstream's {result['upstream_peak_rss_mib']} MiB",
        f"ledger: {d['rows']} generations rows ({d['streamed_rows']} streamed, "
        f"{d['cancelled_rows']} cancelled) for {d['gateway_ok']} successful gateway requests "
        f"({d['gateway_ok_streamed']} streamed); "
        f"failed or non-200: {d['non_200_or_failed']} -> {'OK' if d['passed'] else 'FAILED'}",
        f"target: added median <= {TARGET_ADDED_MEDIAN_MS:g} ms: "
        f"{targets['added_median_ms']['measured']:.3f} ms -> {_verdict(targets['added_median_met'])}",
        f"target: gateway >= {TARGET_THROUGHPUT_PCT:g}% of direct at {meta['concurrency']} connections: "
        f"{targets['throughput_pct']['measured']:.1f}% -> {_verdict(targets['throughput_met'])}",
    ]
    if d["failures"]:
        lines.append(f"first failures: {d['failures']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per target and mode")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput phase")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in the throughput phases")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; every figure is their median")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    return args


def _run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    children = Children()
    try:
        with _terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="genledger-bench-") as tmp:
            try:
                result = _run(bench(args, children, Path(tmp)))
            finally:
                children.stop_all()
    except KeyboardInterrupt:
        print("interrupted: child processes stopped", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["durability"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
