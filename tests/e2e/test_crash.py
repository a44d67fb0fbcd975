"""``kill -9`` of a gateway under load, on SQLite and PostgreSQL.

What was acknowledged survives: every generation whose 200 reached the caller before the kill
is readable after the restart. What was held comes back: the killed instance's reservations
(requests in flight on a limited key) are given back once their lease runs out, by the
restarted instance, and nothing is charged twice: the key's usage is the sum of its
generations' charges and its ``limit_remaining`` is its limit less that usage.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from genledger.core.money import to_usd
from genledger.ledger import Ledger
from tests.deadlines import eventually
from tests.e2e.conftest import MODEL, gateway_settings
from tests.e2e.process import GatewayProcess
from tests.fakes import FakeOpenAIInThread
from tests.ledger.records import charged_to

LEASE_S = 1.0
LIMIT_PICO = 10**12  # a dollar: far more than the requests below cost
STALLED = 3  # streams held open upstream when the instance is killed
ACKNOWLEDGED_BEFORE_KILL = 24
CONCURRENCY = 4
DEADLINE_S = 60.0  # for the whole load; everything below is bounded by it or by its own


def crash_settings(database_url: str, upstream: FakeOpenAIInThread) -> dict[str, Any]:
    settings = gateway_settings(database_url, upstream.api_url, limits={"reservation_lease": LEASE_S})
    settings["providers"]["fake"]["stream_idle_timeout"] = 300
    return settings


async def load_until_killed(
    gateway: GatewayProcess, secret: str, acknowledged: list[str], enough: asyncio.Event
) -> None:
    """Non-streamed requests, ``CONCURRENCY`` at a time, until the gateway is gone."""
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hello"}]}

    async def worker(http: httpx.AsyncClient) -> None:
        while True:
            try:
                response = await http.post("/chat/completions", json=body, headers=headers)
            except httpx.TransportError:
                return  # killed
            assert response.status_code == 200, response.text
            acknowledged.append(response.json()["id"])
            if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                enough.set()

    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(CONCURRENCY)))


async def test_kill_9_under_load_keeps_every_acknowledged_generation_and_gives_held_credit_back(
    database_url: str, upstream: FakeOpenAIInThread, ledger: Ledger, tmp_path: Path
):
    settings = crash_settings(database_url, upstream)
    key, secret = await ledger.keys.create("crash-victim", limit_pico=LIMIT_PICO)
    headers = {"Authorization": f"Bearer {secret}"}
    stalled_body = {
        "model": MODEL,
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "hold on"}],
    }
    acknowledged: list[str] = []
    gateway = GatewayProcess(settings, tmp_path, "killed").start()
    try:
        async with (
            httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http,
            contextlib.AsyncExitStack() as open_streams,
        ):
            # Streams that stall upstream after their first chunk: admitted, reserved, in flight.
            upstream.set_behavior("stall_mid_stream", times=STALLED, delay=120, chunks=1)
            for _ in range(STALLED):
                response = await open_streams.enter_async_context(
                    http.stream("POST", "/chat/completions", json=stalled_body, headers=headers)
                )
                assert response.status_code == 200
                lines = response.aiter_lines()
                open_streams.push_async_callback(lines.aclose)
                assert (await anext(lines)).startswith("data: ")
            held = (await ledger.keys.find_by_id(key.id)).reserved_pico
            assert held > 0
            assert len(await ledger.keys.held(key.id)) == STALLED

            enough = asyncio.Event()
            load = asyncio.create_task(load_until_killed(gateway, secret, acknowledged, enough))
            async with asyncio.timeout(DEADLINE_S):
                await enough.wait()
            gateway.kill()  # SIGKILL, with requests in flight
            async with asyncio.timeout(DEADLINE_S):
                await load
    finally:
        gateway.kill()
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    # The dead instance's reservations outlive it, until their lease runs out.
    assert (await ledger.keys.find_by_id(key.id)).reserved_pico >= held

    with GatewayProcess(settings, tmp_path, "restarted") as restarted:

        async def given_back() -> bool:
            return (await ledger.keys.find_by_id(key.id)).reserved_pico == 0

        assert await eventually(given_back, within=LEASE_S * 4 / 3 + 30), "the held credit never came back"
        assert await ledger.keys.held(key.id) == ()
        async with httpx.AsyncClient(base_url=restarted.base_url, timeout=30, headers=headers) as http:
            for generation_id in acknowledged:
                response = await http.get("/generation", params={"id": generation_id})
                assert response.status_code == 200, (generation_id, response.text)
            info = (await http.get("/key")).json()["data"]
            # Usable again: a request after the restart is served and charged once.
            again = await http.post(
                "/chat/completions",
                json={"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "again"}]},
            )
            assert again.status_code == 200, again.text
    state = await ledger.keys.find_by_id(key.id)
    assert state.usage_pico == await charged_to(ledger, key.id)  # nothing charged twice
    assert state.reserved_pico == 0
    charged_before = state.usage_pico - (await ledger.generations.lookup(again.json()["id"])).charge_pico
    assert info["limit_remaining"] == pytest.approx(to_usd(LIMIT_PICO - charged_before))
    assert info["usage"] == pytest.approx(to_usd(charged_before))
