"""The request log in process: ``X-Request-Id`` taken, made, returned and recorded; one line per
request built from what the request holds, in JSON or text; nothing at all when it is off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from starlette.types import ASGIApp

from genledger.api import create_app
from genledger.api.request_log import MAX_REQUEST_ID
from genledger.config import load_settings
from genledger.core.ids import hash_key
from genledger.gateway.services import Services
from tests.inprocess.stores import (
    MemoryGenerationStore,
    MemoryIdempotencyStore,
    MemoryKeyStore,
    memory_services,
)

CHAT = "/api/v1/chat/completions"
PROMPT = "a prompt that must never reach the log"


@dataclass
class Logged:
    http: httpx.AsyncClient
    lines: list[bytes]
    secret: str
    generations: MemoryGenerationStore
    app: ASGIApp
    services: Services

    async def chat(
        self, *, stream: bool = False, secret: str | None = None, **headers: str | bytes
    ) -> httpx.Response:
        messages = [{"role": "user", "content": PROMPT}]
        body = {"model": "genledger/demo", "messages": messages, "stream": stream}
        auth = {"Authorization": f"Bearer {secret or self.secret}"}
        return await self.http.post(CHAT, json=body, headers={**auth, **headers})

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.lines]


async def _logged(delay: float = 0, **logging: str) -> AsyncIterator[Logged]:
    settings = load_settings(None, logging=logging, providers={"demo": {"kind": "demo", "delay": delay}})
    keys = MemoryKeyStore()
    generations = MemoryGenerationStore(keys)
    services = memory_services(settings, keys, generations, idempotency=MemoryIdempotencyStore())
    _, secret = await keys.create("log-reader", limit_pico=10**12)
    lines: list[bytes] = []
    app = create_app(settings, services, log_write=lines.append)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        yield Logged(http, lines, secret, generations, app, services)
    await services.aclose()


@pytest.fixture
async def logged() -> AsyncIterator[Logged]:
    async for item in _logged(format="json"):
        yield item


async def test_a_line_per_request_with_the_generation_key_model_provider_and_cost(logged: Logged):
    response = await logged.chat()
    assert response.status_code == 200
    generation = logged.generations.generations[response.json()["id"]]
    [line] = logged.records()
    assert line["request_id"] == response.headers["x-request-id"] == generation.request_id
    assert line["request_id"].startswith("req-")
    assert line["generation_id"] == generation.id
    assert line["key_hash"] == hash_key(logged.secret)[:12]
    assert line["key_name"] == "log-reader"
    assert (line["model"], line["provider"], line["status"], line["attempts"]) == (
        "genledger/demo",
        generation.provider_name,
        200,
        1,
    )
    assert line["cost_usd"] == generation.total_cost_pico / 10**12 > 0
    assert (line["method"], line["path"], line["level"]) == ("POST", CHAT, "info")
    assert line["latency_ms"] > 0 and line["time"].endswith("Z")
    assert logged.lines[0].endswith(b"\n") and logged.lines[0].count(b"\n") == 1


async def test_a_stream_is_logged_once_it_ended_with_its_generation(logged: Logged):
    response = await logged.chat(stream=True, **{"X-Request-Id": "caller-trace-42"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "caller-trace-42"
    first = orjson.loads(response.text.split("\n")[0].removeprefix("data: "))
    [line] = logged.records()
    assert line["generation_id"] == first["id"]
    assert logged.generations.generations[first["id"]].request_id == "caller-trace-42"
    assert line["request_id"] == "caller-trace-42" and line["status"] == 200
    assert PROMPT.encode() not in logged.lines[0]


@pytest.fixture
async def slow_stream() -> AsyncIterator[Logged]:
    """The demo model streams its answer over 5 seconds."""
    async for item in _logged(delay=5.0, format="json"):
        yield item


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotency-key"])
async def test_a_stream_its_caller_left_is_logged_with_the_cost_it_was_recorded_with(
    slow_stream: Logged, idempotent: bool
):
    """The caller left mid-stream: the generation is recorded (charged what was generated) in
    the background once the stream is torn down, and its line waits for it and says its cost,
    as any recorded generation's does (it said ``cost_usd: null``)."""
    body = {"model": "genledger/demo", "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    headers = [(b"authorization", f"Bearer {slow_stream.secret}".encode()), (b"host", b"gw")]
    if idempotent:
        headers.append((b"idempotency-key", b"left-1"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": CHAT,
        "raw_path": CHAT.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("gw", 80),
    }
    read = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": orjson.dumps(body), "more_body": False}
        await read.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and b"delta" in message.get("body", b""):
            read.set()  # the caller read the answer's first words, and leaves
            await asyncio.Event().wait()  # while this write still waits on its socket

    slow = asyncio.Event()  # the ledger takes its time: the request ends before the record
    record = slow_stream.generations.record

    async def slow_record(generation: Any, *, reserved: bool = False) -> None:
        await slow.wait()
        await record(generation, reserved=reserved)

    slow_stream.generations.record = slow_record  # type: ignore[method-assign]
    await asyncio.wait_for(slow_stream.app(scope, receive, send), timeout=10)
    assert slow_stream.lines == []  # the line waits for the record
    slow.set()
    await slow_stream.services.drain()
    [generation] = slow_stream.generations.generations.values()
    assert generation.cancelled and generation.total_cost_pico > 0
    [line] = slow_stream.records()
    assert (line["generation_id"], line["status"]) == (generation.id, 200)
    assert line["cost_usd"] == generation.total_cost_pico / 10**12


@pytest.mark.parametrize(
    "sent",
    ["x" * (MAX_REQUEST_ID + 1), "has space", "tab\there", "caf\u00e9".encode(), ""],
    ids=["too-long", "space", "control", "non-ascii", "empty"],
)
async def test_an_unusable_request_id_is_replaced_by_a_fresh_one(logged: Logged, sent: str | bytes):
    response = await logged.chat(**{"X-Request-Id": sent})
    assert response.status_code == 200
    returned = response.headers["x-request-id"]
    assert returned != sent and returned.startswith("req-")
    assert logged.generations.generations[response.json()["id"]].request_id == returned


async def test_the_longest_accepted_request_id_is_recorded_whole(logged: Logged):
    sent = "r" * MAX_REQUEST_ID
    response = await logged.chat(**{"X-Request-Id": sent})
    assert response.headers["x-request-id"] == sent
    assert logged.generations.generations[response.json()["id"]].request_id == sent


async def test_errors_carry_the_id_and_a_401_logs_no_key(logged: Logged):
    bad = await logged.chat(secret="sk-gl-v1-not-a-key")
    missing = await logged.http.get("/api/v1/nowhere")
    assert bad.status_code == 401 and missing.status_code == 404
    assert bad.headers["x-request-id"] != missing.headers["x-request-id"]
    unauthorized, not_found = logged.records()
    assert unauthorized["status"] == 401 and unauthorized["key_hash"] is None
    assert unauthorized["generation_id"] is None and unauthorized["attempts"] == 0
    assert not_found["status"] == 404 and not_found["request_id"] == missing.headers["x-request-id"]
    assert b"not-a-key" not in b"".join(logged.lines)


async def test_the_query_string_is_not_logged(logged: Logged):
    await logged.http.get("/health", params={"secret": "in-the-query"})
    [line] = logged.records()
    assert line["path"] == "/health" and b"in-the-query" not in logged.lines[0]


async def test_the_text_form_is_one_readable_line():
    async for logged in _logged(format="text"):
        response = await logged.chat()
        [line] = logged.lines
        text = line.decode()
        assert text.endswith("\n") and text.count("\n") == 1
        assert f" 200 POST {CHAT} " in text
        assert f"req={response.headers['x-request-id']}" in text
        assert f"gen={response.json()['id']}" in text and "key_name=log-reader" in text


@pytest.mark.parametrize("level", ["warning", "off"])
async def test_no_line_below_its_level_but_the_id_all_the_same(level: str):
    async for logged in _logged(level=level):
        response = await logged.chat(stream=True)
        plain = await logged.chat(**{"X-Request-Id": "kept"})
        assert logged.lines == []
        assert response.headers["x-request-id"].startswith("req-")
        assert plain.headers["x-request-id"] == "kept"
        assert logged.generations.generations[plain.json()["id"]].request_id == "kept"
