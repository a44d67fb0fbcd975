"""What a limited key reserves for a request with content parts, tool calls and tools.

Seen three ways on both databases: held while the upstream stalls mid-stream, at the edge
of a limit (a limit of exactly the reservation admits the request, one picodollar less
refuses it), and against the bytes the upstream was sent.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from genledger.api.wire import parse_chat_request
from genledger.config import LimitsConfig, load_settings
from genledger.gateway.admission import Admission
from genledger.gateway.catalog import Catalog
from genledger.ledger import KeyRecord, Ledger
from genledger.limits.ratelimit import MemoryRateLimiter
from tests.deadlines import eventually
from tests.e2e.conftest import MODEL, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer
from tests.ledger.records import charged_to
from tests.prompts import prompt_bytes

PROMPT_PICO, COMPLETION_PICO = 1_000_000, 2_000_000  # per token, from the prices below
PRICES = {"prompt_price": "1", "completion_price": "2"}
MAX_TOKENS = 7
CITY = "Zürich"
BODY: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": MAX_TOKENS,
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Réponds brièvement. 🙂"}]},
        {
            "role": "user",
            "name": "ana",
            "content": [
                {"type": "text", "text": f"What is it like in {CITY}, as in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/zh.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_conditions", "arguments": json.dumps({"city": CITY})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "12°C, cloudy"}]},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_conditions",
                "description": "Current conditions in a city, in °C",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ],
}


@pytest.fixture(scope="module")
def settings(database_url: str, upstream: FakeOpenAIInThread) -> dict[str, Any]:
    settings = gateway_settings(database_url, upstream.api_url)
    settings["models"][MODEL] = {"provider": "fake", "upstream_model": "fast", **PRICES}
    return settings


async def new_key(ledger: Ledger, limit_pico: int) -> tuple[KeyRecord, str]:
    return await ledger.keys.create(f"parts-{uuid.uuid4().hex[:8]}", limit_pico=limit_pico)


async def admitted(ledger: Ledger, settings: dict[str, Any], body: dict[str, Any]) -> int:
    """What ``Admission.admit`` reserves for ``body``, for a key of its own (then released)."""
    key, _ = await new_key(ledger, 10**12)
    admission = Admission(ledger.keys, MemoryRateLimiter(), LimitsConfig())
    entry = Catalog.from_settings(load_settings(None, **settings)).resolve(MODEL)
    request = parse_chat_request(json.dumps(body).encode())
    amount = await admission.admit(key, request, [entry], hold_id="gen-admitted")
    assert (await ledger.keys.find_by_id(key.id)).reserved_pico == amount
    assert await ledger.keys.held(key.id) == (("gen-admitted", admission.leases.owner, amount),)
    await admission.release("gen-admitted", amount)
    assert await ledger.keys.held(key.id) == ()
    return amount


async def test_a_held_request_reserves_its_worst_case_and_gives_it_back(
    ledger: Ledger, settings: dict[str, Any], upstream: FakeOpenAIInThread
):
    key, secret = await new_key(ledger, 10**12)  # a dollar
    upstream.set_behavior("stall_mid_stream", times=1, delay=30, chunks=1)
    with GatewayServer.build(**settings) as gateway:
        async with (
            httpx.AsyncClient(timeout=10) as http,
            http.stream(
                "POST",
                gateway.base_url + "/chat/completions",
                json={**BODY, "stream": True},
                headers={"Authorization": f"Bearer {secret}"},
            ) as response,
        ):
            assert response.status_code == 200
            # Held in a name: a line iterator left to the garbage collector is closed at some
            # moment, and closes the connection with it.
            lines = response.aiter_lines()
            await anext(lines)  # answering: admitted, and held until we go
            held = (await ledger.keys.find_by_id(key.id)).reserved_pico
            # GET /key shows what is held (an extension field).
            shown = await http.get(gateway.base_url + "/key", headers={"Authorization": f"Bearer {secret}"})
            assert shown.json()["data"]["reserved_in_flight"] == held / 10**12
            sent = upstream.requests()[-1]["json"]
            assert upstream.stats()["open_streams"] == 1  # still held
            await lines.aclose()  # we go

        # Gone: the gateway records the cancelled stream and settles the reservation.
        async def settled() -> bool:
            return (await ledger.keys.find_by_id(key.id)).reserved_pico == 0

        assert await eventually(settled), "the reservation was never settled"
    assert held == await admitted(ledger, settings, BODY)
    # It covers every byte of the prompt the upstream was sent, and every token it may answer.
    floor = prompt_bytes(sent["messages"], sent) * PROMPT_PICO + MAX_TOKENS * COMPLETION_PICO
    assert held >= floor
    state = await ledger.keys.find_by_id(key.id)
    assert state.usage_pico == await charged_to(ledger, key.id)


async def test_a_limit_of_exactly_the_reservation_admits_and_one_less_refuses(
    ledger: Ledger, settings: dict[str, Any]
):
    amount = await admitted(ledger, settings, BODY)
    exact, exact_secret = await new_key(ledger, amount)
    short, short_secret = await new_key(ledger, amount - 1)
    with GatewayServer.build(**settings) as gateway:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            served = await http.post(
                "/chat/completions", json=BODY, headers={"Authorization": f"Bearer {exact_secret}"}
            )
            refused = await http.post(
                "/chat/completions", json=BODY, headers={"Authorization": f"Bearer {short_secret}"}
            )
    assert served.status_code == 200, served.text
    assert refused.status_code == 402, refused.text
    error = refused.json()["error"]
    assert error["metadata"]["limit_source"] == "key_limit"
    assert error["metadata"]["max_cost"] == pytest.approx(amount / 10**12)
    state = await ledger.keys.find_by_id(exact.id)
    assert state.reserved_pico == 0
    assert 0 < state.usage_pico == await charged_to(ledger, exact.id) <= amount
    assert (await ledger.keys.find_by_id(short.id)).reserved_pico == 0
