"""Revisions of genledger against the bench floor, in one sitting: CPU per request and latency.

    .venv/bin/python bench/floor_ab.py --src ../wt-before/src --src src

Starts the fake upstream, the floor (``../shared/bench-floor/``, the minimal pass-through on
the same stack) and ``genledger serve`` from each ``--src`` (on SQLite), then, per round and
mode (non-streamed, streamed), for each target in turn (order reversed every other round):
``--seconds`` of load at ``--concurrency`` connections (the server's CPU per request from
``/proc``, and requests/s), then ``--sequential`` requests one at a time (p50 and p99 of the
latency, the direct upstream measured beside them). Prints each figure per round and as a
ratio to the floor's, which holds from sitting to sitting where milliseconds do not.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instructions import _config, _free_port, _upstream, _wait_healthy

ROOT = Path(__file__).resolve().parent.parent
FLOOR = ROOT.parent / "shared" / "bench-floor"
FLOOR_KEY = "sk-pyfloor-test-1234"
PROMPT = b'"messages":[{"role":"user","content":"Say hello."}]'


@dataclass
class Target:
    name: str
    url: str  # the chat completions URL
    key: str
    model: bytes
    pid: int | None  # the server process whose CPU is counted (None: the direct upstream)

    def body(self, stream: bool) -> bytes:
        extra = b',"stream":true,"stream_options":{"include_usage":true}' if stream else b""
        return b'{"model":"%s",%s%s}' % (self.model, PROMPT, extra)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _call(session: aiohttp.ClientSession, target: Target, body: bytes) -> None:
    async with session.post(target.url, data=body) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"{target.name}: status {response.status}: {await response.text()}")


def _session(target: Target, concurrency: int) -> aiohttp.ClientSession:
    headers = {"authorization": f"Bearer {target.key}", "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    return aiohttp.ClientSession(connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(60))


async def load(target: Target, stream: bool, concurrency: int, seconds: float) -> tuple[float, float]:
    """Requests/s and the server's CPU milliseconds per request."""
    body = target.body(stream)
    async with _session(target, concurrency) as session:
        await asyncio.gather(*(_call(session, target, body) for _ in range(concurrency * 4)))  # warm
        done = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await _call(session, target, body)
                done += 1

        cpu = _cpu_seconds(target.pid) if target.pid else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = (_cpu_seconds(target.pid) - cpu) if target.pid else 0.0
    return done / elapsed, 1000 * cpu / done


async def sequential(target: Target, stream: bool, n: int) -> list[float]:
    body = target.body(stream)
    latencies = []
    async with _session(target, 1) as session:
        for _ in range(20):
            await _call(session, target, body)
        for _ in range(n):
            started = time.perf_counter()
            await _call(session, target, body)
            latencies.append(1000 * (time.perf_counter() - started))
    return latencies


def _spawn(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def start_targets(
    sources: list[Path], upstream: str, workdir: Path, procs: list[subprocess.Popen[bytes]]
) -> list[Target]:
    targets = [Target("direct", upstream + "/chat/completions", "none", b"fast", None)]
    port = _free_port()
    env = {**os.environ, "GW_UPSTREAM": upstream + "/chat/completions", "GW_DB": str(workdir / "floor.db")}
    argv = [
        str(Path(sys.executable).with_name("uvicorn")), "v1_app:app", "--app-dir", str(FLOOR),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    procs.append(_spawn(argv, env, workdir, workdir / "floor.log"))
    _wait_healthy(f"http://127.0.0.1:{port}", procs[-1])
    targets.append(
        Target("floor", f"http://127.0.0.1:{port}/v1/chat/completions", FLOOR_KEY, b"mock/gpt", procs[-1].pid)
    )
    for index, src in enumerate(sources):
        run = workdir / f"gl{index}"
        run.mkdir()
        config = _config(run, upstream)
        env = {**os.environ, "PYTHONPATH": str(src.resolve())}
        genledger = [sys.executable, "-m", "genledger"]
        created = subprocess.run(
            [*genledger, "keys", "create", "--name", "bench", "--config", str(config)],
            env=env, cwd=run, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        port = _free_port()
        argv = [*genledger, "serve", "--config", str(config), "--port", str(port), "--log-level", "warning"]
        procs.append(_spawn(argv, env, run, run / "gateway.log"))
        _wait_healthy(f"http://127.0.0.1:{port}", procs[-1])
        url = f"http://127.0.0.1:{port}/api/v1/chat/completions"
        targets.append(Target(str(src), url, created.stdout.split()[-1], b"bench/model", procs[-1].pid))
    return targets


async def run(args: argparse.Namespace, targets: list[Target]) -> None:
    for round_ in range(args.rounds):
        order = targets if round_ % 2 == 0 else targets[::-1]
        for stream in (False, True):
            mode = "streamed" if stream else "non-streamed"
            figures = {}
            for target in order:
                rps, cpu_ms = await load(target, stream, args.concurrency, args.seconds)
                latencies = await sequential(target, stream, args.sequential)
                p50 = statistics.median(latencies)
                p99 = statistics.quantiles(latencies, n=100)[98]
                figures[target.name] = (rps, cpu_ms, p50, p99)
            floor = figures["floor"]
            direct = figures["direct"]
            print(f"round {round_ + 1}, {mode}")
            for target in targets:
                rps, cpu_ms, p50, p99 = figures[target.name]
                ratios = (
                    f"cpu x{cpu_ms / floor[1]:.2f}  req/s x{rps / floor[0]:.2f}  "
                    if target.pid and target.name != "floor"
                    else ""
                )
                print(
                    f"  {target.name:28.28s} {rps:7.0f} req/s  {cpu_ms:6.3f} ms cpu/req  "
                    f"p50 +{p50 - direct[2]:.3f} ms  p99 {p99:.2f} ms  {ratios}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", type=Path, action="append", required=True, help="a src/ folder (repeatable)")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="genledger-floor-ab-") as tmp:
        upstream_process, upstream = _upstream()
        procs.append(upstream_process)
        try:
            targets = start_targets(args.src, upstream, Path(tmp), procs)
            asyncio.run(run(args, targets))
        finally:
            for process in reversed(procs):
                process.terminate()
            for process in procs:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
