"""Python bytecodes per request, by module and by function: where a request's Python runs.

callgrind (``instructions.py``) counts every machine instruction but cannot say which Python
function spent them; py-spy and cProfile can, but they sample or they distort (cProfile
charges each call the same overhead). This counts the bytecodes each function executes,
through ``sys.settrace`` with opcode events, between two signals: as repeatable as an
instruction count (the same code and inputs execute the same bytecodes, whatever the
machine is doing), and attributed to the functions that run them. What runs in C (the
sockets, SQLite, orjson, httptools) is not counted, and a bytecode that calls into C counts
one however long the call: it says where to look, not what a change saves. Time a change
with ``timeit`` and ``instructions.py`` (a row's NUL search by ``"".join(map(str, ...))``
ran 150 fewer bytecodes than a loop, and took four times as long).

It serves the floor (``../shared/bench-floor/``) and genledger from each ``--src`` on one
fake upstream, each traced in its own process, sends ``--requests`` requests at
``--concurrency`` after a warm-up, and prints bytecodes per request: in all, by module
(genledger's modules one by one, libraries as a whole), and the costliest functions.

    .venv/bin/python bench/bytecodes.py [--src ../wt-before/src --src src] [--stream]
        [--requests 300] [--concurrency 4] [--top 25] [--no-floor] [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import pickle
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    FLOOR,
    FLOOR_KEY,
    FLOOR_MODEL,
    MODEL_SLUG,
    Child,
    Children,
    children_stopped,
    create_key,
    free_port,
    genledger_env,
    start_upstream,
    wait_healthy,
    write_config,
)
from ledger_count import database
from loadgen import exactly

Counts = dict[tuple[str, int, str], int]  # (file, first line, function) -> bytecodes


# --------------------------------------------------------------------------- in the traced server


def _count_between_signals(out: Path) -> None:
    """SIGUSR1 starts counting (every thread), SIGUSR2 stops and writes the counts to ``out``."""
    counts: collections.Counter[CodeType] = collections.Counter()
    # Generated code (a dataclass's __init__, __eq__, ...) shares one file, line and name:
    # counted by the class of its ``self`` instead.
    generated: collections.Counter[tuple[str, int, str]] = collections.Counter()

    def opcodes(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        if event == "opcode":
            counts[frame.f_code] += 1
        return opcodes

    def calls(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        frame.f_trace_opcodes = True
        code = frame.f_code
        if code.co_filename != "<string>" or "self" not in frame.f_locals:
            return opcodes
        key = ("<string>", 0, f"{type(frame.f_locals['self']).__qualname__}.{code.co_name}")

        def generated_opcodes(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
            if event == "opcode":
                generated[key] += 1
            return generated_opcodes

        return generated_opcodes

    previous: list[Any] = []  # the tracers before (a coverage tool's, under the tests)

    def start(signum: int, frame: FrameType | None) -> None:
        counts.clear()
        generated.clear()
        previous[:] = [sys.gettrace(), threading.gettrace()]
        threading.settrace(calls)
        sys.settrace(calls)

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.settrace(previous[0] if previous else None)
        threading.settrace(previous[1] if previous else None)  # type: ignore[arg-type]
        found = collections.Counter(generated)
        for code, n in counts.items():
            found[code.co_filename, code.co_firstlineno, code.co_qualname] += n
        part = out.with_name(out.name + ".part")
        part.write_bytes(pickle.dumps(dict(found)))
        part.replace(out)  # whole, or not there: the driver waits for it

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def _serve_traced(out: Path, what: str, argv: list[str]) -> None:
    _count_between_signals(out)
    if what == "floor":
        import uvicorn

        sys.argv = ["uvicorn", *argv]
        uvicorn.main()
    else:
        from genledger.api.server import main as serving

        sys.exit(serving(argv))


# ------------------------------------------------------------------------------------- the driver


async def _load(url: str, key: str, model: str, stream: bool, requests: int, concurrency: int) -> None:
    body = b'{"model":"%s","messages":[{"role":"user","content":"Say hello."}],"stream":%s}' % (
        model.encode(),
        b"true" if stream else b"false",
    )
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    await exactly(url, body, headers, requests, concurrency, timeout_s=120)


def _counted(child: Child, out: Path, url: str, key: str, model: str, args: argparse.Namespace) -> Counts:
    """The counts of ``child`` (started, its chat completions at ``url``) over ``--requests``
    requests after the warm-up; ``child`` is stopped afterwards."""

    def load(n: int) -> None:
        asyncio.run(_load(url, key, model, args.stream, n, args.concurrency))

    try:
        load(args.warmup)
        child.signal(signal.SIGUSR1)
        time.sleep(0.3)
        load(args.requests)
        time.sleep(0.3)  # the last requests' ledger writes and log lines
        child.signal(signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not out.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"{child.name} wrote no counts")
            time.sleep(0.05)
        counts: Counts = pickle.loads(out.read_bytes())
        return counts
    finally:
        child.stop()


def _traced(what: str, out: Path, argv: list[str]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--traced", str(out), what, "--", *argv]


def floor_counts(args: argparse.Namespace, children: Children, workdir: Path, upstream: str) -> Counts:
    port, out = free_port(), workdir / "floor.counts"
    env = {**os.environ, "GW_UPSTREAM": upstream + "/chat/completions", "GW_DB": str(workdir / "floor.db")}
    argv = [
        "v1_app:app", "--app-dir", str(FLOOR), "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    child = children.spawn("floor", _traced("floor", out, argv), workdir, workdir / "floor.log", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(child, url + "/health")
    return _counted(child, out, url + "/v1/chat/completions", FLOOR_KEY, FLOOR_MODEL, args)


@contextlib.contextmanager
def _ledger(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of a fresh ledger of ``kind`` (a PostgreSQL database is dropped afterwards)."""
    with asyncio.Runner() as runner:
        fresh = database(kind, workdir)
        ledger = runner.run(fresh.__aenter__())
        try:
            yield ledger.url
        finally:
            runner.run(fresh.__aexit__(None, None, None))


def genledger_counts(
    src: Path, args: argparse.Namespace, children: Children, workdir: Path, upstream: str
) -> Counts:
    run = Path(tempfile.mkdtemp(prefix="bc-", dir=workdir))
    with _ledger(args.database, run) as ledger_url:
        config = write_config(run, ledger_url, upstream)
        key = create_key(run, config, src)
        port, out = free_port(), run / "genledger.counts"
        argv = ["--config", str(config), "--port", str(port), "--log-level", "warning"]
        traced = _traced("genledger", out, argv)
        child = children.spawn(f"genledger {src}", traced, run, run / "gateway.log", env=genledger_env(src))
        url = f"http://127.0.0.1:{port}"
        wait_healthy(child, url + "/health")
        return _counted(child, out, url + "/api/v1/chat/completions", key, MODEL_SLUG, args)


# ------------------------------------------------------------------------------------- the report


def _where(filename: str) -> str:
    for marker, prefix in (("/site-packages/", ""), ("/src/", ""), ("/bench-floor/", "floor/")):
        if marker in filename:
            return prefix + filename.split(marker, 1)[1]
    found = re.search(r"/python3\.\d+/(.*)", filename)
    return "stdlib/" + found.group(1) if found else filename


def _module(filename: str) -> str:
    where = _where(filename)
    return where if where.startswith(("genledger/", "floor/")) else where.split("/", 1)[0]


def report(name: str, counts: Counts, requests: int, top: int) -> None:
    total = sum(counts.values())
    by_module: collections.Counter[str] = collections.Counter()
    for (filename, _, _), n in counts.items():
        by_module[_module(filename)] += n
    ours = sum(n for module, n in by_module.items() if module.startswith(("genledger/", "floor/")))
    print(f"\n{name}: {total / requests:,.0f} bytecodes per request ({ours / requests:,.0f} in its own code)")
    for module, n in by_module.most_common(top):
        print(f"  {n / requests:8.1f}  {module}")
    print("  costliest functions:")
    for (filename, line, function), n in sorted(counts.items(), key=lambda item: -item[1])[:top]:
        print(f"  {n / requests:8.1f}  {_where(filename)}:{line} {function}")


def main() -> None:
    if sys.argv[1:2] == ["--traced"]:
        out, what, _, *argv = sys.argv[2:]
        _serve_traced(Path(out), what, argv)
        return
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--src", type=Path, action="append", help="a src/ folder (repeatable; default: ours)")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--top", type=int, default=25, help="modules and functions listed")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    sources = args.src or [Path(__file__).resolve().parent.parent / "src"]
    mode = "streamed" if args.stream else "non-streamed"
    print(
        f"{mode}, {args.requests} requests at {args.concurrency} connections after {args.warmup}, "
        f"genledger on {args.database}"
    )
    with tempfile.TemporaryDirectory(prefix="genledger-bc-") as tmp, children_stopped() as children:
        workdir = Path(tmp)
        _, upstream = start_upstream(children, workdir)
        if not args.no_floor:
            report("floor", floor_counts(args, children, workdir, upstream), args.requests, args.top)
        for src in sources:
            counts = genledger_counts(src, args, children, workdir, upstream)
            report(f"genledger {src}", counts, args.requests, args.top)


if __name__ == "__main__":
    main()
