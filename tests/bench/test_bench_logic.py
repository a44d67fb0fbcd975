"""The benches' own logic that a wrong figure would hide: wrk's script, its summary, the ratios.

Benchmarks are not tests (none runs here); these pin what they compute from what they measure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bytecodes
import gateway_overhead
import loadgen
from harness import percentile, ratio

from tests.fakes.runner import serve_app


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ('{"a":1}', '[[{"a":1}]]'),
        ("x]]y", "[=[x]]y]=]"),
        ("x]]y]=]z", "[==[x]]y]=]z]==]"),
        ("\nlead", "[[\n\nlead]]"),  # Lua drops the newline right after the bracket
    ],
)
def test_lua_string_cannot_be_closed_by_its_text(text: str, literal: str) -> None:
    assert loadgen.lua_string(text) == literal


async def test_wrk_sends_the_body_and_the_bearer_key(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    seen: list[tuple[str, str | None, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.headers.get("Authorization"), await request.read()))
        return web.Response(status=200 if len(seen) % 2 else 500, text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    body = b'{"model":"m","messages":[{"role":"user","content":"a ]] b"}]}'
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-test-1"}
    async with serve_app(app) as port:
        url = loadgen.URL(f"http://127.0.0.1:{port}/v1/chat/completions")
        target = loadgen.Target("t", url, None, {False: body}, headers)  # type: ignore[arg-type]
        outcome = await asyncio.wait_for(loadgen.wrk_throughput(target, False, 1, 1, tmp_path), 30)
    assert seen and set(seen) == {("POST", "Bearer sk-test-1", body)}
    # Every other answer was a 500: wrk counts it as a status error, not as ok; the last
    # request may have been answered and dropped by wrk as its time ran out.
    answered_ok = (len(seen) + 1) // 2
    assert answered_ok - 1 <= outcome["ok"] == target.ok[False] <= answered_ok
    assert len(seen) // 2 - 1 <= outcome["errors"] <= len(seen) // 2
    assert target.dropped == 1


def test_wrk_summary_arithmetic() -> None:
    line = (
        'noise\nWRK_JSON {"requests":1010,"duration_us":2000000,"status":10,"connect":0,"read":2,'
        '"write":0,"timeout":1,"p50_us":1500,"p99_us":9000}\n'
    )
    outcome = loadgen.wrk_outcome(loadgen.parse_wrk(line))
    assert outcome == {"rps": 500.0, "load_p50_ms": 1.5, "load_p99_ms": 9.0, "ok": 1000, "errors": 13}


def _figures(cpu: float, rps: float, added: float, events: int | None = None) -> dict[str, Any]:
    sequential: dict[str, Any] = {"added_p50_ms": added}
    if events is not None:
        sequential["events_per_stream"] = events
    return {"sequential": sequential, "load": {"cpu_ms_per_request": cpu, "rps": rps}}


def test_ratios_are_genledger_over_the_others() -> None:
    summary = {
        "non_streamed": {
            "floor": _figures(0.3, 1000, 0.5),
            "genledger": _figures(0.45, 800, 0.9),
            "litellm": _figures(9.0, 90, 20.0),
        },
        "streamed": {
            "floor": _figures(0.42, 900, 0.6, events=12),
            "genledger": _figures(0.81, 600, 1.0, events=12),
        },
    }
    found = gateway_overhead.ratios(summary)
    assert found["non_streamed"]["cpu_per_request_x_floor"] == 1.5
    assert found["non_streamed"]["rps_x_floor"] == 0.8
    assert found["non_streamed"]["rps_per_core_x_litellm"] == 20.0  # 9.0 / 0.45
    assert found["non_streamed"]["added_p50_ms_vs_litellm"] == -19.1
    assert found["streamed"]["cpu_per_request_x_floor"] == round(0.81 / 0.42, 3)
    assert "cpu_per_request_x_litellm" not in found["streamed"]
    # (0.81 - 0.45) ms over 12 events = 30 us; the floor's (0.42 - 0.3) / 12 = 10 us
    assert found["cpu_us_per_chunk"] == {"floor": 10.0, "genledger": 30.0}


def test_ledger_check_allows_only_what_wrk_dropped() -> None:
    targets = [loadgen.Target("genledger", loadgen.URL("http://x/a"), None, {})]  # type: ignore[arg-type]
    targets[0].ok = {False: 100, True: 50}
    targets[0].dropped = 32
    counted = {"rows": 150, "streamed_rows": 50, "cancelled_rows": 0}
    assert gateway_overhead.durability(counted, [], targets)["passed"]
    assert gateway_overhead.durability({**counted, "rows": 182, "cancelled_rows": 32}, [], targets)["passed"]
    assert not gateway_overhead.durability({**counted, "rows": 183}, [], targets)["passed"]
    assert not gateway_overhead.durability({**counted, "rows": 149}, [], targets)["passed"]
    assert not gateway_overhead.durability({**counted, "streamed_rows": 49}, [], targets)["passed"]
    targets[0].failed = 1
    assert not gateway_overhead.durability(counted, [], targets)["passed"]


def test_median_of_rounds_and_percentiles() -> None:
    rounds = [{"a": {"x": 1.0, "y": None}}, {"a": {"x": 3.0, "y": 2.0}}, {"a": {"x": 2.0, "y": None}}]
    assert gateway_overhead.median_of_rounds(rounds) == {"a": {"x": 2.0, "y": 2.0}}
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([5.0], 99) == 5.0
    assert ratio(1, 0) is None
    assert ratio(1, 3) == 0.333


def test_the_soak_mix() -> None:
    import soak

    kinds = [soak.kind_of(i) for i in range(200)]
    counts = {kind: kinds.count(kind) for kind in set(kinds)}
    assert counts == {"plain": 110, "stream": 60, "cancel": 10, "failover_plain": 10, "failover_stream": 10}
    assert b'"stream":true' in soak.body("cancel") and b"bench/slowish" in soak.body("cancel")
    assert b'"stream"' not in soak.body("failover_plain") and b"bench/failover" in soak.body("failover_plain")
    assert b'"stream":true' in soak.body("failover_stream")


@dataclasses.dataclass(frozen=True, slots=True)
class _Pair:
    a: int
    b: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Triple:
    a: int
    b: int
    c: int


def _three_pairs_and_a_triple() -> None:
    for i in range(3):
        _Pair(i, i)
    _Triple(1, 2, 3)


def test_bytecodes_are_counted_between_the_signals_generated_code_by_its_class(tmp_path: Path) -> None:
    out = tmp_path / "counts"
    handlers = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2)
    try:
        bytecodes._count_between_signals(out)
        _three_pairs_and_a_triple()  # not counted: before the first signal
        os.kill(os.getpid(), signal.SIGUSR1)
        _three_pairs_and_a_triple()
        os.kill(os.getpid(), signal.SIGUSR2)
        _three_pairs_and_a_triple()  # not counted: after the second
    finally:
        signal.signal(signal.SIGUSR1, handlers[0])
        signal.signal(signal.SIGUSR2, handlers[1])
    counts = pickle.loads(out.read_bytes())
    pair = counts[("<string>", 0, "_Pair.__init__")]
    triple = counts[("<string>", 0, "_Triple.__init__")]
    # Both dataclasses' __init__ share one file, line and name: each is counted apart, per call.
    assert pair % 3 == 0 and triple > pair / 3
    loop = [n for (_, _, name), n in counts.items() if name == "_three_pairs_and_a_triple"]
    assert loop and loop[0] > 0


def test_bytecodes_name_modules_by_package_and_genledger_by_file() -> None:
    where = bytecodes._module
    assert where("/x/.venv/lib/python3.11/site-packages/aiohttp/client.py") == "aiohttp"
    assert where("/work/main/src/genledger/gateway/completions.py") == "genledger/gateway/completions.py"
    assert where("/work/shared/bench-floor/gwcore.py") == "floor/gwcore.py"
    assert where("/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/tasks.py") == "stdlib"
    assert where("<string>") == "<string>"
