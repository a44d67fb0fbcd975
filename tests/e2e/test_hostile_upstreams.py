"""Hostile upstreams: a huge body, endless stream lines, bytes that are not UTF-8, a chunk just
often enough to never be idle, absurd headers. Each ends in its bounded time with the right
error (502, or 524 for time), no more of the peer read than the limits allow, the failure in
the ledger (a stream's generation records the error; a refused answer charges nothing), and
the key's credit whole again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.hostile import HostileUpstream
from tests.gateway import GatewayServer, create_key

MODEL = "hostile/chat"
MAX_RESPONSE = 1024 * 1024
IDLE_S, STREAM_S, TIMEOUT_S = 0.5, 1.5, 5.0
LIMIT_PICO = 10**12  # $1


@pytest.fixture(scope="module")
def peer() -> Iterator[HostileUpstream]:
    with HostileUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(peer: HostileUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    provider = {
        "kind": "openai",
        "base_url": peer.api_url,
        "display_name": "Hostile",
        "timeout": TIMEOUT_S,
        "stream_idle_timeout": IDLE_S,
        "stream_timeout": STREAM_S,
        "max_response_bytes": MAX_RESPONSE,
    }
    server = GatewayServer.build(
        database_url=f"sqlite:///{tmp_path_factory.mktemp('hostile')}/genledger.db",
        routing={"breaker_failures": 10_000},
        providers={"hostile": provider},
        models={MODEL: {"provider": "hostile", "prompt_price": "1", "completion_price": "2"}},
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def key(gateway: GatewayServer) -> str:
    return create_key(gateway.settings.database_url, "hostile-caller", limit_pico=LIMIT_PICO)


def chat(gateway: GatewayServer, key: str, *, stream: bool = False) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    return response, time.monotonic() - started


def events(response: httpx.Response) -> list[dict[str, Any]]:
    return [
        orjson.loads(line[6:])
        for line in response.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def error_chunk(response: httpx.Response) -> dict[str, Any]:
    """The stream's error chunk (a usage chunk and ``[DONE]`` follow it)."""
    [chunk] = [c for c in events(response) if "error" in c]
    return chunk


def credit_is_whole(gateway: GatewayServer, key: str) -> None:
    data = httpx.get(gateway.base_url + "/key", headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert (data["usage"], data["reserved_in_flight"], data["limit_remaining"]) == (0, 0, 1.0)


def recorded_failure(
    gateway: GatewayServer, key: str, generation_id: str, relayed: int = 0
) -> dict[str, Any]:
    """The failed stream's record: charged nothing when it relayed nothing, else estimates of
    the ``relayed`` pieces (at least a token each: the provider generated them)."""
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.get(gateway.base_url + "/generation", params={"id": generation_id}, headers=headers)
    assert response.status_code == 200
    record: dict[str, Any] = response.json()["data"]
    assert record["finish_reason"] == "error"
    if relayed:
        assert record["tokens_completion"] >= relayed and record["usage"] > 0
        assert record["native_tokens_completion"] is None
    else:
        assert record["usage"] == 0
    return record


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_body_is_refused_after_the_limit_not_read_whole(gateway, key, peer, declared):
    peer.act("huge_body", size=256 * 1024 * 1024, declared=declared)
    response, _ = chat(gateway, key)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert f"larger than {MAX_RESPONSE} bytes" in error["message"]
    assert error["metadata"] == {"provider_name": "Hostile", "raw": "response too large"}
    assert peer.wait_closed(5)
    # The gateway hung up: the peer got out a few socket buffers beyond the limit, not 256 MiB.
    assert peer.sent < 32 * MAX_RESPONSE
    credit_is_whole(gateway, key)


def test_endless_pings_end_at_the_stream_deadline_with_a_524_chunk(gateway, key, peer):
    peer.act("endless_pings", interval=0.01)
    response, took = chat(gateway, key, stream=True)
    assert response.status_code == 200
    last = error_chunk(response)
    assert last["error"]["code"] == 524
    assert f"lasted longer than {STREAM_S:g}s" in last["error"]["message"]
    assert STREAM_S <= took < STREAM_S + 3
    assert peer.wait_closed(5)
    recorded_failure(gateway, key, last["id"])
    credit_is_whole(gateway, key)


def test_a_chunk_just_within_the_idle_timeout_forever_ends_at_the_stream_deadline(gateway, peer):
    key = create_key(gateway.settings.database_url, "hostile-slow", limit_pico=LIMIT_PICO)
    peer.act("slow_chunks", interval=IDLE_S * 0.6)
    response, took = chat(gateway, key, stream=True)
    chunks = events(response)
    relayed = sum(1 for c in chunks if c.get("choices") and c["choices"][0]["delta"].get("content"))
    assert relayed >= 1
    assert error_chunk(response)["error"]["code"] == 524
    assert STREAM_S <= took < STREAM_S + 3
    record = recorded_failure(gateway, key, chunks[0]["id"], relayed)
    data = httpx.get(gateway.base_url + "/key", headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert (data["usage"], data["reserved_in_flight"]) == (record["usage"], 0)


def test_a_line_that_never_ends_is_a_502_chunk_after_a_mebibyte(gateway, key, peer):
    peer.act("endless_line")
    response, _ = chat(gateway, key, stream=True)
    last = error_chunk(response)
    assert last["error"]["code"] == 502 and "oversized line" in last["error"]["message"]
    assert peer.wait_closed(5)
    assert peer.sent < 32 * 1024 * 1024
    recorded_failure(gateway, key, last["id"])
    credit_is_whole(gateway, key)


def test_invalid_utf8_in_an_answer_is_a_502(gateway, key, peer):
    peer.act("invalid_utf8")
    response, _ = chat(gateway, key)
    assert response.status_code == 502
    assert response.json()["error"]["metadata"]["provider_name"] == "Hostile"
    credit_is_whole(gateway, key)


def test_invalid_utf8_in_a_stream_ends_it_with_a_502_chunk(gateway, key, peer):
    peer.act("invalid_utf8", stream=True)
    response, _ = chat(gateway, key, stream=True)
    assert response.status_code == 200
    last = error_chunk(response)
    assert last["error"]["code"] == 502
    recorded_failure(gateway, key, last["id"])


@pytest.mark.parametrize(
    ("script", "params"),
    [("long_header", {"size": 1024 * 1024}), ("many_headers", {"count": 10_000})],
    ids=["a-mebibyte-header", "ten-thousand-headers"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_absurd_headers_are_a_502(gateway, key, peer, script, params, stream):
    peer.act(script, **params)
    response, took = chat(gateway, key, stream=stream)
    assert response.status_code == 502, response.text
    # Refused as the head comes in, past 64 KiB, before the parser holds it all.
    error = response.json()["error"]
    assert error["metadata"] == {"provider_name": "Hostile", "raw": "MalformedResponse: malformed HTTP"}
    assert took < TIMEOUT_S
    credit_is_whole(gateway, key)
