"""Revisions of genledger against the bench floor, in one sitting: CPU per request and latency.

    .venv/bin/python bench/floor_ab.py --src ../wt-before/src --src src

Starts the fake upstream, the floor (``../shared/bench-floor/``, the minimal pass-through on
the same stack) and ``genledger serve`` from each ``--src`` (on SQLite), then, per round and
mode (non-streamed, streamed), for each target in turn (order reversed every other round):
``--seconds`` of load at ``--concurrency`` connections (the server's CPU per request from
``/proc``, and requests/s; wrk when installed, else Python), then ``--sequential`` requests
one at a time (p50 and p99 of the latency, the direct upstream measured beside them). Prints
each figure per round and as a ratio to the floor's, which holds from sitting to sitting where
milliseconds do not. The set-up and the load are ``gateway_overhead.py``'s (``harness.py``,
``loadgen.py``); only the targets differ.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    FLOOR_KEY,
    FLOOR_MODEL,
    MODEL_SLUG,
    UPSTREAM_MODEL,
    BenchError,
    Child,
    children_stopped,
    create_key,
    percentile,
    start_floor,
    start_gateway,
    start_upstream,
    write_config,
)
from loadgen import Target, make_session, sequential, throughput, warm_up, wrk_available
from yarl import URL

PROMPT = b'"messages":[{"role":"user","content":"Say hello."}]'


def body(model: str, stream: bool) -> bytes:
    extra = b',"stream":true,"stream_options":{"include_usage":true}' if stream else b""
    return b'{"model":"%s",%s%s}' % (model.encode(), PROMPT, extra)


async def run(
    args: argparse.Namespace, servers: dict[str, tuple[Child, str, str, str]], workdir: Path
) -> None:
    """``servers``: target name -> (the process whose CPU counts, URL, key, model)."""
    async with contextlib.AsyncExitStack() as stack:
        targets: list[Target] = []
        for name, (_, url, key, model) in servers.items():
            headers = {
                "content-type": "application/json",
                **({"authorization": f"Bearer {key}"} if key else {}),
            }
            session = await stack.enter_async_context(make_session(args.concurrency, headers))
            targets.append(
                Target(name, URL(url), session, {s: body(model, s) for s in (False, True)}, headers)
            )
        for target in targets:
            await warm_up(target, args.concurrency)
        for round_ in range(args.rounds):
            order = targets if round_ % 2 == 0 else targets[::-1]
            for stream in (False, True):
                figures = {}
                for target in order:
                    process = servers[target.name][0]
                    ok, cpu = target.total_ok, process.cpu_seconds()
                    load = await throughput(
                        target, stream, args.concurrency, args.seconds, workdir, use_wrk=args.use_wrk
                    )
                    cpu_ms = 1000 * (process.cpu_seconds() - cpu) / max(target.total_ok - ok, 1)
                    latencies = [
                        r.seconds * 1000
                        for r in (await sequential([target], stream, args.sequential))[target.name]
                    ]
                    figures[target.name] = (
                        load["rps"],
                        cpu_ms,
                        statistics.median(latencies),
                        percentile(latencies, 99),
                    )
                floor, direct = figures["floor"], figures["direct"]
                print(f"round {round_ + 1}, {'streamed' if stream else 'non-streamed'}")
                for target in targets:
                    rps, cpu_ms, p50, p99 = figures[target.name]
                    ratios = (
                        f"cpu x{cpu_ms / floor[1]:.2f}  req/s x{rps / floor[0]:.2f}  "
                        if target.name not in ("floor", "direct")
                        else ""
                    )
                    print(
                        f"  {target.name:28.28s} {rps:7.0f} req/s  {cpu_ms:6.3f} ms cpu/req  "
                        f"p50 +{p50 - direct[2]:.3f} ms  p99 {p99:.2f} ms  {ratios}",
                        flush=True,
                    )
        for target in targets:
            if target.failed:
                raise BenchError(f"{target.name} failed {target.failed} requests: {target.failures}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", type=Path, action="append", required=True, help="a src/ folder (repeatable)")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    args.use_wrk = args.generator == "wrk" or (args.generator == "auto" and wrk_available())
    with tempfile.TemporaryDirectory(prefix="genledger-floor-ab-") as tmp, children_stopped() as children:
        workdir = Path(tmp)
        upstream, base = start_upstream(children, workdir)
        floor, floor_url = start_floor(children, workdir, base)
        servers = {
            "direct": (upstream, base + "/chat/completions", "", UPSTREAM_MODEL),
            "floor": (floor, floor_url, FLOOR_KEY, FLOOR_MODEL),
        }
        for index, src in enumerate(args.src):
            run_dir = workdir / f"gl{index}"
            run_dir.mkdir()
            config = write_config(run_dir, f"sqlite:///{run_dir / 'ledger.db'}", base)
            key = create_key(run_dir, config, src)
            gateway, url = start_gateway(children, run_dir, config, src=src, name=f"gateway{index}")
            servers[str(src)] = (gateway, url + "/api/v1/chat/completions", key, MODEL_SLUG)
        asyncio.run(run(args, servers, workdir))


if __name__ == "__main__":
    main()
