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
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Children, children_stopped, free_port, start_upstream, wait_healthy, write_config
from loadgen import exactly

BODY = b'{"model":"bench/model","messages":[{"role":"user","content":"Say hello."}]%s}'
START_TIMEOUT_S = 600.0


def _config(workdir: Path, upstream: str) -> Path:
    # Under valgrind the gateway is ~50x slower: no timeout may fire for that.
    timeouts = "timeout = 600\nconnect_timeout = 120\nstream_idle_timeout = 600\n"
    return write_config(workdir, f"sqlite:///{workdir / 'ledger.db'}", upstream, provider_options=timeouts)


async def _load(url: str, key: str, stream: bool, requests: int, concurrency: int) -> None:
    body = BODY % (b',"stream":true' if stream else b"")
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    await exactly(url + "/api/v1/chat/completions", body, headers, requests, concurrency, timeout_s=600)


def _totals(dump: Path) -> int:
    text = dump.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no totals in {dump}")
    return int(found.group(1))


def measure(src: Path, args: argparse.Namespace, upstream: str, workdir: Path, children: Children) -> float:
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
    port = free_port()
    out = run / "callgrind.out"
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--dump-instr=no",
        "--trace-children=yes",  # `genledger serve` becomes `python -m genledger.api` (exec)
        *genledger,
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    gateway = children.spawn(f"gateway {src}", argv, run, run / "gateway.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(gateway, url + "/health", timeout=START_TIMEOUT_S)
        asyncio.run(_load(url, key, args.stream, args.warmup, args.concurrency))
        subprocess.run(["callgrind_control", "-z", str(gateway.pid)], check=True, capture_output=True)
        asyncio.run(_load(url, key, args.stream, args.requests, args.concurrency))
        subprocess.run(["callgrind_control", "-d", str(gateway.pid)], check=True, capture_output=True)
        dumps = sorted(run.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
        return _totals(dumps[-1]) / args.requests
    finally:
        gateway.stop()


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
    with tempfile.TemporaryDirectory(prefix="genledger-ir-") as tmp, children_stopped() as children:
        workdir = Path(tmp)
        _, base = start_upstream(children, workdir)
        for round_ in range(args.rounds):
            for src in args.src:
                per = measure(src, args, base, workdir, children)
                mode = "streamed" if args.stream else "non-streamed"
                print(f"round {round_ + 1}  {src}  {mode}: {per:,.0f} instructions per request", flush=True)


if __name__ == "__main__":
    main()
