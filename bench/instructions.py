"""Instructions per request under callgrind: an A/B of revisions that machine noise cannot move.

Wall-clock and CPU-time figures need a quiet machine; an instruction count does not. This
runs ``genledger serve`` (from each ``--src`` given, e.g. two git worktrees) under
``valgrind --tool=callgrind``, warms it up, zeroes the counters, sends ``--requests``
requests at ``--concurrency`` from a separate process, dumps the counters and divides.
Instructions are not seconds (a cache miss costs more than an add), but for two revisions of
the same Python code on the same interpreter they move together, and the count repeats to
within about a percent whatever else the machine is doing.

    .venv/bin/python bench/instructions.py --src ../wt-before/src --src src --stream

The fake upstream and the load generator run natively; only the gateway runs under valgrind
(about 50 times slower, so the counts are per request, never per second).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
MODEL = "bench/model"
BODY = b'{"model":"bench/model","messages":[{"role":"user","content":"Say hello."}]%s}'
START_TIMEOUT_S = 600.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/health", timeout=2):
            return
        time.sleep(0.5)
    raise SystemExit(f"{url}: no answer within {START_TIMEOUT_S:g}s")


def _upstream() -> tuple[subprocess.Popen[bytes], str]:
    """The fake OpenAI upstream, natively, and the base URL it prints once listening."""
    argv = [sys.executable, "-m", "tests.fakes.openai_upstream", "--port", "0"]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("http"):
        raise SystemExit(f"the fake upstream printed no URL: {line!r}")
    return process, line


def _config(workdir: Path, upstream: str) -> Path:
    config = workdir / "bench.toml"
    config.write_text(
        f'database_url = "sqlite+aiosqlite:///{workdir / "ledger.db"}"\n\n'
        f'[providers.fake]\nkind = "openai"\nbase_url = "{upstream}"\ndisplay_name = "Fake"\n'
        # Under valgrind the gateway is ~50x slower: no timeout may fire for that.
        "timeout = 600\nconnect_timeout = 120\nstream_idle_timeout = 600\n\n"
        f'[models."{MODEL}"]\nprovider = "fake"\nupstream_model = "fast"\n'
        'prompt_price = "0.15"\ncompletion_price = "0.60"\n'
    )
    return config


async def _load(url: str, key: str, stream: bool, requests: int, concurrency: int) -> None:
    body = BODY % (b',"stream":true' if stream else b"")
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    left = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with session.post(url + "/api/v1/chat/completions", data=body) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"status {response.status}: {await response.text()}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


def _totals(dump: Path) -> int:
    text = dump.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no totals in {dump}")
    return int(found.group(1))


def measure(src: Path, args: argparse.Namespace, upstream: str, workdir: Path) -> float:
    """Instructions per request of the gateway built from ``src``."""
    run = Path(tempfile.mkdtemp(prefix="ir-", dir=workdir))
    config = _config(run, upstream)
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    genledger = [sys.executable, "-m", "genledger"]
    created = subprocess.run(
        [*genledger, "keys", "create", "--name", "bench", "--config", str(config)],
        env=env,
        cwd=run,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key = created.stdout.split()[-1]
    port = _free_port()
    out = run / "callgrind.out"
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--dump-instr=no",
        *genledger,
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    log = (run / "gateway.log").open("wb")
    gateway = subprocess.Popen(argv, env=env, cwd=run, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, gateway)
        asyncio.run(_load(url, key, args.stream, args.warmup, args.concurrency))
        subprocess.run(["callgrind_control", "-z", str(gateway.pid)], check=True, capture_output=True)
        asyncio.run(_load(url, key, args.stream, args.requests, args.concurrency))
        subprocess.run(["callgrind_control", "-d", str(gateway.pid)], check=True, capture_output=True)
        dumps = sorted(run.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
        return _totals(dumps[-1]) / args.requests
    finally:
        gateway.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            gateway.wait(60)
        if gateway.poll() is None:
            gateway.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", type=Path, action="append", required=True, help="a src/ folder (repeatable)")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the sources this many times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genledger-ir-") as tmp:
        workdir = Path(tmp)
        upstream, base = _upstream()
        try:
            for round_ in range(args.rounds):
                for src in args.src:
                    per = measure(src, args, base, workdir)
                    mode = "streamed" if args.stream else "non-streamed"
                    print(
                        f"round {round_ + 1}  {src}  {mode}: {per:,.0f} instructions per request", flush=True
                    )
        finally:
            upstream.terminate()
            upstream.wait(10)


if __name__ == "__main__":
    main()
