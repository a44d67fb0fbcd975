"""Instructions per request under callgrind: an A/B of revisions that machine noise cannot move.

Wall-clock and CPU-time figures need a quiet machine; an instruction count does not. This
runs ``genledger serve`` (from each ``--src`` given, e.g. two git worktrees) under
``valgrind --tool=callgrind``, warms it up, zeroes the counters, sends ``--requests``
requests at ``--concurrency`` from a separate process, dumps the counters and divides.
Instructions are not seconds (a cache miss costs more than an add), but for two revisions of
the same Python code on the same interpreter they move together, and the count repeats to
within about a percent whatever else the machine is doing.

    .venv/bin/python bench/instructions.py --src ../wt-before/src --src src --stream
    .venv/bin/python bench/instructions.py --src src --floor      # and the floor's, for a ratio

With ``--floor`` the floor (``../shared/bench-floor/``, under uvicorn as ``harness.start_floor``
runs it) is counted too, alike, and each revision is printed as a multiple of it: the figure
``gateway_overhead.py`` reads from ``/proc`` as CPU per request, here with the noise gone.
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

from harness import (
    FLOOR,
    FLOOR_KEY,
    FLOOR_MODEL,
    MODEL_SLUG,
    Children,
    children_stopped,
    free_port,
    start_upstream,
    wait_healthy,
    write_config,
)
from loadgen import exactly

BODY = b'{"model":"%s","messages":[{"role":"user","content":"Say hello."}]%s}'
START_TIMEOUT_S = 600.0


def _config(workdir: Path, upstream: str) -> Path:
    # Under valgrind the gateway is ~50x slower: no timeout may fire for that.
    timeouts = "timeout = 600\nconnect_timeout = 120\nstream_idle_timeout = 600\n"
    return write_config(workdir, f"sqlite:///{workdir / 'ledger.db'}", upstream, provider_options=timeouts)


async def _load(url: str, key: str, model: str, stream: bool, requests: int, concurrency: int) -> None:
    body = BODY % (model.encode(), b',"stream":true' if stream else b"")
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    await exactly(url, body, headers, requests, concurrency, timeout_s=600)


def _totals(dump: Path) -> int:
    text = dump.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no totals in {dump}")
    return int(found.group(1))


Server = tuple[list[str], dict[str, str], str, str, str]
"""How to start a server under valgrind, and load it: argv, environment, chat URL, key, model."""


def _genledger(src: Path, upstream: str, run: Path, port: int) -> Server:
    """``genledger serve`` from ``src``: its argv, environment, chat URL, key and model."""
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
    argv = [*genledger, "serve", "--config", str(config), "--port", str(port), "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}/api/v1/chat/completions"
    return argv, env, url, created.stdout.split()[-1], MODEL_SLUG


def _floor(upstream: str, run: Path, port: int) -> Server:
    """The floor under uvicorn, as ``harness.start_floor`` starts it."""
    env = {**os.environ, "GW_UPSTREAM": upstream + "/chat/completions", "GW_DB": str(run / "floor.db")}
    argv = [
        sys.executable, "-m", "uvicorn", "v1_app:app", "--app-dir", str(FLOOR),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return argv, env, f"http://127.0.0.1:{port}/v1/chat/completions", FLOOR_KEY, FLOOR_MODEL


def measure(
    src: Path | None, args: argparse.Namespace, upstream: str, workdir: Path, children: Children
) -> float:
    """Instructions per request of the gateway built from ``src`` (of the floor: None)."""
    run = Path(tempfile.mkdtemp(prefix="ir-", dir=workdir))
    port = free_port()
    argv, env, url, key, model = (
        _floor(upstream, run, port) if src is None else _genledger(src, upstream, run, port)
    )
    out = run / "callgrind.out"
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--dump-instr=no",
        "--trace-children=yes",  # `genledger serve` becomes `python -m genledger.api` (exec)
    ]
    server = children.spawn(f"server {src or 'floor'}", [*valgrind, *argv], run, run / "server.log", env=env)
    try:
        wait_healthy(server, f"http://127.0.0.1:{port}/health", timeout=START_TIMEOUT_S)
        asyncio.run(_load(url, key, model, args.stream, args.warmup, args.concurrency))
        subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
        asyncio.run(_load(url, key, model, args.stream, args.requests, args.concurrency))
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True)
        dumps = sorted(run.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
        return _totals(dumps[-1]) / args.requests
    finally:
        server.stop()


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
    parser.add_argument("--floor", action="store_true", help="count the floor too, and print ratios to it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genledger-ir-") as tmp, children_stopped() as children:
        workdir = Path(tmp)
        _, base = start_upstream(children, workdir)
        mode = "streamed" if args.stream else "non-streamed"
        for round_ in range(args.rounds):
            floor = measure(None, args, base, workdir, children) if args.floor else None
            if floor is not None:
                print(f"round {round_ + 1}  floor  {mode}: {floor:,.0f} instructions per request", flush=True)
            for src in args.src:
                per = measure(src, args, base, workdir, children)
                ratio = f"  (x{per / floor:.3f} the floor's)" if floor else ""
                print(
                    f"round {round_ + 1}  {src}  {mode}: {per:,.0f} instructions per request{ratio}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
