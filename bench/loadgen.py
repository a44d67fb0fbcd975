"""The load the benches send: one request at a time (Python), and at C connections (wrk, or Python).

Latency is always measured here, in one asyncio process on uvloop, one request at a time: the
generator's own cost is then the same for every target, and cancels in "added" figures. For
throughput, the generator's CPU would decide the ratios (a Python client spends about as much
per request as the floor does), so the compiled ``wrk`` (Debian package ``wrk``) is used when it
is on ``PATH``, with a Lua script that sets the POST body and the bearer key
(:func:`wrk_script`); without it, the Python generator does the same job.

wrk stops at the end of its duration with up to one request per connection in flight, which
it drops: the server may have finished and recorded them or not (a stream cut mid-way is
recorded as cancelled). So a wrk phase counts ``ok`` requests exactly and up to
``connections`` more as *dropped*; the ledger check allows rows for them (:class:`Target`).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from harness import BenchError, percentile
from yarl import URL

DONE: Final = b"data: [DONE]\n\n"
REQUEST_TIMEOUT_S: Final = 60.0
RAMP_S: Final = 0.5  # un-timed start of every Python throughput phase (connections open, caches fill)
WARMUP_REQUESTS: Final = 200  # sequential, per target and per mode
WARMUP_BURST_PER_WORKER: Final = 5  # then a concurrent burst, so every pool holds C connections
BLOCK: Final = 100  # sequential requests per target before the next target's turn
WRK_MARK: Final = "WRK_JSON "


@dataclass(frozen=True)
class Reply:
    """One successful request: its latency (streams: until ``[DONE]``), the time to its first
    server-sent event (streams only), and how many events it carried."""

    seconds: float
    first_event_s: float | None = None
    events: int = 0


@dataclass
class Target:
    """One server the load goes to, with its own connection pool and pre-encoded bodies."""

    name: str
    url: URL
    session: aiohttp.ClientSession
    bodies: dict[bool, bytes]  # stream? -> body
    headers: dict[str, str] = field(default_factory=dict)  # as the session sends them (for wrk)
    ok: dict[bool, int] = field(default_factory=lambda: {False: 0, True: 0})
    dropped: int = 0  # wrk's in-flight requests at the end of its phases (at most, see the module)
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    async def call(self, stream: bool) -> Reply | None:
        """One request; None if it failed (the failure is counted and its first words kept)."""
        try:
            started = time.perf_counter()
            async with self.session.post(self.url, data=self.bodies[stream]) as response:
                if response.status != 200:
                    self.fail(f"HTTP {response.status}: {(await response.read())[:200]!r}")
                    return None
                if not stream:
                    await response.read()
                    reply: Reply | None = Reply(time.perf_counter() - started)
                else:
                    reply = await read_stream(response.content, started)
                    if reply is None:
                        self.fail("stream without [DONE], or with an error event")
                        return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.fail(f"{type(exc).__name__}: {exc}")
            return None
        self.ok[stream] += 1
        return reply

    def fail(self, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < 5:
            self.failures.append(reason)

    @property
    def total_ok(self) -> int:
        return self.ok[False] + self.ok[True]


async def read_stream(content: aiohttp.StreamReader, started: float) -> Reply | None:
    """Read to the end; None if ``[DONE]`` never came or an error event did."""
    done_at = 0.0
    first: float | None = None
    events = 0
    tail = b""
    broken = False
    while piece := await content.readany():
        if first is None and b"data:" in piece:
            first = time.perf_counter() - started
        events += piece.count(b"data:")
        if done_at:
            continue
        broken = broken or b'"error":{' in piece  # a Responses object says "error":null
        tail = (tail + piece)[-len(DONE) :]
        if tail == DONE:
            done_at = time.perf_counter()
    if broken or not done_at:
        return None
    return Reply(done_at - started, first, events)


def make_session(connections: int, headers: dict[str, str]) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0),
        headers=headers,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )


# ------------------------------------------------------------------------------------------ Python load


async def exactly(
    url: str, body: bytes, headers: dict[str, str], requests: int, concurrency: int, timeout_s: float
) -> None:
    """Exactly ``requests`` POSTs of ``body`` at ``concurrency`` connections, each read to its
    end; the first that is not a 200 stops the bench (for counts per request: instructions,
    bytecodes)."""
    left = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with session.post(url, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise BenchError(f"status {response.status}: {await response.text()}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


async def sequential(targets: list[Target], stream: bool, n: int) -> dict[str, list[Reply]]:
    """``n`` requests one at a time per target, in blocks of :data:`BLOCK`; the first target
    rotates from block to block, so machine noise hits every target alike."""
    replies: dict[str, list[Reply]] = {t.name: [] for t in targets}
    for block, start in enumerate(range(0, n, BLOCK)):
        size = min(BLOCK, n - start)
        shift = block % len(targets)
        for target in targets[shift:] + targets[:shift]:
            record = replies[target.name].append
            for _ in range(size):
                reply = await target.call(stream)
                if reply is not None:
                    record(reply)
    return replies


async def python_throughput(target: Target, stream: bool, connections: int, seconds: float) -> dict[str, Any]:
    """Requests/s completed within ``seconds`` at ``connections`` (after an un-timed ramp), and
    the p50/p99 latency of those requests."""
    window_start = time.perf_counter() + RAMP_S
    window_end = window_start + seconds
    latencies: list[float] = []

    async def worker() -> None:
        while time.perf_counter() < window_end:
            reply = await target.call(stream)
            now = time.perf_counter()
            if reply is not None and window_start <= now <= window_end:
                latencies.append(reply.seconds)

    await asyncio.gather(*(worker() for _ in range(connections)))
    return _rates(
        len(latencies),
        seconds,
        percentile(latencies, 50) if latencies else 0.0,
        percentile(latencies, 99) if latencies else 0.0,
    )


def _rates(requests: int, seconds: float, p50_s: float, p99_s: float) -> dict[str, Any]:
    return {
        "rps": round(requests / seconds, 1),
        "load_p50_ms": round(p50_s * 1000, 3),
        "load_p99_ms": round(p99_s * 1000, 3),
    }


async def warm_up(target: Target, connections: int) -> None:
    for stream in target.bodies:
        for _ in range(WARMUP_REQUESTS):
            await target.call(stream)

        async def burst(stream: bool = stream) -> None:
            for _ in range(WARMUP_BURST_PER_WORKER):
                await target.call(stream)

        await asyncio.gather(*(burst() for _ in range(connections)))
    if target.failed:
        raise BenchError(f"{target.name} fails during warm-up: {target.failures}")


# ------------------------------------------------------------------------------------------------- wrk


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def lua_string(text: str) -> str:
    """``text`` as a Lua long-bracket literal whose level no ``]=*]`` inside it can close."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    # Lua drops a newline right after the opening bracket: one more keeps the text's own.
    return f"[{eq}[{chr(10) if text.startswith(chr(10)) else ''}{text}]{eq}]"


def wrk_script(body: bytes, headers: dict[str, str]) -> str:
    """A wrk Lua script: every request a POST of ``body`` with ``headers`` (the bearer key among
    them); at the end it prints one line, :data:`WRK_MARK` then JSON, that :func:`parse_wrk` reads."""
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body.decode())}"]
    # A space after "[": "[[" would open a long string.
    lines += [f"wrk.headers[ {lua_string(name)} ] = {lua_string(value)}" for name, value in headers.items()]
    lines += [
        "function done(summary, latency, requests)",
        "  local e = summary.errors",
        f'  io.write(string.format("{WRK_MARK}{{\\"requests\\":%d,\\"duration_us\\":%d,\\"status\\":%d,'
        '\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"timeout\\":%d,'
        '\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",',
        "    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,",
        "    latency:percentile(50), latency:percentile(99)))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def parse_wrk(stdout: str) -> dict[str, int]:
    """The counters the script's ``done`` printed."""
    for line in stdout.splitlines():
        if line.startswith(WRK_MARK):
            figures: dict[str, int] = json.loads(line.removeprefix(WRK_MARK))
            return figures
    raise BenchError(f"wrk printed no summary:\n{stdout[-2000:]}")


def wrk_outcome(figures: dict[str, int]) -> dict[str, Any]:
    """Requests/s and latency of a wrk run; ``ok`` counts the responses without error."""
    errors = sum(figures[k] for k in ("status", "connect", "read", "write", "timeout"))
    seconds = figures["duration_us"] / 1e6
    ok = max(figures["requests"] - figures["status"], 0)  # a response completed without error
    return {
        **_rates(ok, seconds, figures["p50_us"] / 1e6, figures["p99_us"] / 1e6),
        "ok": ok,
        "errors": errors,
    }


async def wrk_throughput(
    target: Target, stream: bool, connections: int, seconds: float, workdir: Path
) -> dict[str, Any]:
    """As :func:`python_throughput`, from ``wrk -t1`` (one thread: the cores belong to the servers).

    wrk takes whole seconds: ``seconds`` is rounded (at least 1); the rate uses wrk's own duration.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", target.name)  # a target may be named by a path (floor_ab)
    script = workdir / f"wrk-{safe}-{'stream' if stream else 'plain'}.lua"
    script.write_text(wrk_script(target.bodies[stream], target.headers))
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(round(seconds), 1)}s",
        "--timeout", f"{REQUEST_TIMEOUT_S:g}s",
        "-s", str(script), str(target.url),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"wrk exited with {process.returncode}: {stdout.decode(errors='replace')[-1000:]}")
    outcome = wrk_outcome(parse_wrk(stdout.decode(errors="replace")))
    target.ok[stream] += outcome["ok"]
    target.dropped += connections
    if outcome["errors"]:
        target.fail(f"wrk: {outcome['errors']} errors")
    return outcome


async def throughput(
    target: Target, stream: bool, connections: int, seconds: float, workdir: Path, *, use_wrk: bool
) -> dict[str, Any]:
    if use_wrk:
        return await wrk_throughput(target, stream, connections, seconds, workdir)
    return await python_throughput(target, stream, connections, seconds)
