"""The fake upstreams themselves: formats, behaviours, the control API and the runners."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.fakes import (
    BEHAVIOR_HEADER,
    BehaviorError,
    FakeAnthropicInThread,
    FakeOpenAIInThread,
    FakeServer,
    parse_spec,
    run_fake_anthropic,
    run_fake_openai,
    unused_port,
)

REPO = Path(__file__).resolve().parents[1]
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


@pytest.fixture
async def openai() -> AsyncIterator[FakeServer]:
    async with run_fake_openai() as fake:
        yield fake


@pytest.fixture
async def anthropic() -> AsyncIterator[FakeServer]:
    async with run_fake_anthropic() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def chat(content: str = "x" * 40, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra}


def message(content: str = "x" * 40, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


def parse_sse(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) per event."""
    events: list[tuple[str | None, str]] = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        events.append((name, "\n".join(data)))
    return events


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, behavior: str | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    if behavior is not None:
        headers[BEHAVIOR_HEADER] = behavior
    async with session.post(url, json=body, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


# ------------------------------------------------------------------------------------------ OpenAI ok


async def test_openai_ok_non_streamed(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    url = openai.base_url + "/chat/completions"
    assert openai.base_url == f"http://127.0.0.1:{openai.port}/v1"
    status, headers, raw = await post(session, url, chat(max_tokens=3))
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    body = json.loads(raw)
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "tok tok tok", "refusal": None}
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (10, 3, 13)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0

    _, _, raw = await post(session, url, chat("hi"))  # no max_tokens: 8 words, stop; tiny prompt: 1 token
    body = json.loads(raw)
    assert body["choices"][0]["message"]["content"] == " ".join(["tok"] * 8)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 1
    assert body["id"] != json.loads((await post(session, url, chat()))[2])["id"]


async def test_openai_usage_params_and_list_content(
    openai: FakeServer, session: aiohttp.ClientSession
) -> None:
    body = chat(max_tokens=5)
    body["messages"] = [
        {"role": "system", "content": "s" * 20},
        {"role": "user", "content": [{"type": "text", "text": "u" * 20}]},
    ]
    spec = "ok;tokens=2;cached_tokens=4;reasoning_tokens=3"
    _, _, raw = await post(session, openai.base_url + "/chat/completions", body, spec)
    reply = json.loads(raw)
    assert reply["choices"][0]["message"]["content"] == "tok tok"
    assert reply["choices"][0]["finish_reason"] == "stop"  # 2 natural tokens < max_tokens 5
    assert reply["usage"]["prompt_tokens"] == 10
    assert reply["usage"]["completion_tokens"] == 5
    assert reply["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    assert reply["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3


async def test_openai_stream_with_usage(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    body = chat(max_tokens=3, stream=True, stream_options={"include_usage": True})
    status, headers, raw = await post(session, openai.base_url + "/chat/completions", body)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    events = [data for _, data in parse_sse(raw)]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(data) for data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o-mini" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "tok tok tok"
    assert len(chunks) == 1 + 3 + 1 + 1  # role, one per word, finish, usage
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert chunks[-1]["usage"]["prompt_tokens"] == 10
    stats = openai.stats()
    assert (stats["completed_streams"], stats["open_streams"], stats["cancelled_streams"]) == (1, 0, 0)


async def test_openai_stream_without_usage(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    _, _, raw = await post(session, openai.base_url + "/chat/completions", chat(stream=True))
    events = [data for _, data in parse_sse(raw)]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(data) for data in events[:-1]]
    assert len(chunks) == 1 + 8 + 1
    assert all("usage" not in c and c["choices"] for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_openai_tool_calls(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    tools = [{"type": "function", "function": {"name": "lookup_weather", "parameters": {}}}]
    url = openai.base_url + "/chat/completions"
    _, _, raw = await post(session, url, chat("What's the weather?", tools=tools))
    choice = json.loads(raw)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    _, _, raw = await post(session, url, chat("What's the weather?", tools=tools, stream=True))
    chunks = [json.loads(data) for _, data in parse_sse(raw)[:-1]]
    arguments = "".join(
        tc["function"].get("arguments", "")
        for c in chunks
        for tc in c["choices"][0]["delta"].get("tool_calls") or []
    )
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    _, _, raw = await post(session, url, chat("hello", tools=tools))  # no "weather": plain text
    assert json.loads(raw)["choices"][0]["finish_reason"] == "stop"


async def test_openai_models_and_validation(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    async with session.get(openai.base_url + "/models") as response:
        models = await response.json()
    assert models["object"] == "list"
    assert "gpt-4o-mini" in [m["id"] for m in models["data"]]
    status, _, raw = await post(session, openai.base_url + "/chat/completions", {"model": "m"})
    assert status == 400
    assert json.loads(raw)["error"]["type"] == "invalid_request_error"
    stats = openai.stats()
    assert stats["models_requests"] == 1
    assert stats["by_behavior"] == {"rejected": 1}


# ---------------------------------------------------------------------------------------- behaviours


@pytest.mark.parametrize(
    ("spec", "status", "error_type", "code"),
    [
        ("status:500", 500, "server_error", None),
        ("status:503", 503, "server_error", None),
        ("status:400", 400, "invalid_request_error", None),
        ("status:401", 401, "invalid_request_error", "invalid_api_key"),
        ("status:529", 529, "overloaded_error", "overloaded"),
        ("status:400;code=context_length_exceeded", 400, "invalid_request_error", "context_length_exceeded"),
    ],
)
async def test_openai_status(
    openai: FakeServer,
    session: aiohttp.ClientSession,
    spec: str,
    status: int,
    error_type: str,
    code: str | None,
) -> None:
    got, headers, raw = await post(session, openai.base_url + "/chat/completions", chat(), spec)
    assert got == status
    error = json.loads(raw)["error"]
    assert (error["type"], error["code"]) == (error_type, code)
    assert error["message"]
    assert "Retry-After" not in headers


async def test_status_429_retry_after(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    url = openai.base_url + "/chat/completions"
    status, headers, raw = await post(session, url, chat(), "status:429")
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"
    _, headers, _ = await post(session, url, chat(stream=True), "status:429;retry_after=0.1")
    assert headers["Retry-After"] == "0.1"


async def test_overloaded_garbage_empty(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    url = openai.base_url + "/chat/completions"
    status, _, raw = await post(session, url, chat(), "overloaded")
    assert status == 503
    assert "overloaded" in raw.decode().lower()
    assert json.loads(raw)["error"]["message"]

    status, _, raw = await post(session, url, chat(), "garbage")
    assert (status, raw) == (200, b"<html>oops</html>")

    status, _, raw = await post(session, url, chat(stream=True), "garbage")
    assert status == 200
    datas = [data for _, data in parse_sse(raw)]
    assert "<html>oops</html>" in datas
    with pytest.raises(json.JSONDecodeError):
        json.loads(datas[1])

    for body in (chat(), chat(stream=True)):
        status, _, raw = await post(session, url, body, "empty")
        assert (status, raw) == (200, b"")
    assert openai.stats()["by_behavior"] == {"overloaded": 1, "garbage": 2, "empty": 2}


async def test_slow_and_delay_ms(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    url = openai.base_url + "/chat/completions"
    for spec, body in (("slow:0.2", chat()), ("ok:200", chat()), ("slow:0.2", chat(stream=True))):
        started = time.perf_counter()
        status, _, raw = await post(session, url, body, spec)
        assert time.perf_counter() - started >= 0.19
        assert status == 200
        assert raw.endswith(b"data: [DONE]\n\n") if body.get("stream") else json.loads(raw)["choices"]


async def test_bad_behavior_header(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    url = openai.base_url + "/chat/completions"
    for spec in ("explode", "status:abc", "garbage:1", "ok;nope=1"):
        status, _, raw = await post(session, url, chat(), spec)
        assert status == 400, spec
        assert "X-Fake-Behavior" in json.loads(raw)["error"]["message"]


async def test_stall_then_client_gives_up(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    url = openai.base_url + "/chat/completions"
    openai.set_behavior("stall", delay=5, times=1)
    started = time.perf_counter()
    with pytest.raises(asyncio.TimeoutError):
        await session.post(url, json=chat(), timeout=aiohttp.ClientTimeout(total=0.2))
    assert time.perf_counter() - started < 1
    await openai.wait_until(lambda s: s["cancelled_requests"] == 1, within=2)
    status, _, _ = await post(session, url, chat())  # the queued stall was used once
    assert status == 200
    assert openai.stats()["by_behavior"] == {"stall": 1, "ok": 1}


async def test_stall_streamed_sends_no_byte(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await session.post(
            openai.base_url + "/chat/completions",
            json=chat(stream=True),
            headers={BEHAVIOR_HEADER: "stall:5"},
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    stats = await openai.wait_until(lambda s: s["cancelled_requests"] == 1)
    assert stats["cancelled_streams"] == 0  # never started streaming


async def test_stall_mid_stream_counts_open_and_cancelled(
    openai: FakeServer, session: aiohttp.ClientSession
) -> None:
    headers = {BEHAVIOR_HEADER: "stall_mid_stream:5;chunks=2"}
    url = openai.base_url + "/chat/completions"
    async with session.post(url, json=chat(stream=True), headers=headers) as response:
        assert response.status == 200
        lines = [await response.content.readline() for _ in range(6)]  # role chunk, 2 words, then nothing
        assert [line for line in lines if line.strip()][-1].startswith(b'data: {"id"')
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(response.content.readline(), 0.2)
        assert openai.stats()["open_streams"] == 1
        response.close()  # the client gives up
    stats = await openai.wait_until(lambda s: s["open_streams"] == 0)
    assert stats["cancelled_streams"] == 1
    assert stats["completed_streams"] == 0


async def test_stall_mid_stream_resumes(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    body = chat(max_tokens=4, stream=True)
    _, _, raw = await post(session, openai.base_url + "/chat/completions", body, "stall_mid_stream:0.2")
    chunks = [json.loads(d) for _, d in parse_sse(raw)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "tok tok tok tok"
    assert openai.stats()["completed_streams"] == 1


async def test_die_mid_stream(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    url = openai.base_url + "/chat/completions"
    headers = {BEHAVIOR_HEADER: "die_mid_stream:2"}
    received: list[bytes] = []
    async with session.post(url, json=chat(stream=True), headers=headers) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for line in response.content:
                received.append(line)
    datas = [line[6:].strip() for line in received if line.startswith(b"data: ")]
    assert len(datas) == 3  # role + 2 words
    assert b"[DONE]" not in datas

    async with session.post(url, json=chat(), headers=headers) as response:  # non-streamed: truncated body
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    stats = await openai.wait_until(lambda s: s["open_streams"] == 0)
    assert stats["dropped_connections"] == 2
    assert stats["cancelled_streams"] == 0


async def test_error_mid_stream(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    url = openai.base_url + "/chat/completions"
    _, _, raw = await post(session, url, chat(stream=True), "error_mid_stream:1")
    datas = [json.loads(d) for _, d in parse_sse(raw)]
    assert len(datas) == 3
    assert datas[-1]["error"]["type"] == "server_error"
    status, _, _ = await post(session, url, chat(), "error_mid_stream")
    assert status == 500


async def test_client_cancels_slow_stream(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    headers = {BEHAVIOR_HEADER: "ok;chunk_delay_ms=100;tokens=50"}
    async with session.post(
        openai.base_url + "/chat/completions", json=chat(stream=True), headers=headers
    ) as r:
        await r.content.readline()
        assert openai.stats()["open_streams"] == 1
    stats = await openai.wait_until(lambda s: s["cancelled_streams"] == 1)
    assert stats["open_streams"] == 0


# ---------------------------------------------------------------------------------------- control API


async def test_control_queue_in_order(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    control = openai.url + "/_control/behavior"
    for data in ({"behavior": "status", "status": 500, "times": 2}, {"behavior": "status:503", "times": 1}):
        async with session.post(control, json=data) as response:
            assert response.status == 200
    url = openai.base_url + "/chat/completions"
    # the header overrides without consuming the queue
    assert (await post(session, url, chat(), "ok"))[0] == 200
    statuses = [(await post(session, url, chat()))[0] for _ in range(4)]
    assert statuses == [500, 500, 503, 200]
    async with session.get(openai.url + "/_control/stats") as response:
        stats = await response.json()
    assert stats["requests"] == 5
    assert stats["by_behavior"] == {"ok": 2, "status": 3}


async def test_control_standing_model_and_reset(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    url = openai.base_url + "/chat/completions"
    openai.set_behavior("status:500")  # standing
    openai.set_behavior("status", status=529, times=1, model="gpt-4o")
    assert (await post(session, url, chat()))[0] == 500
    assert (await post(session, url, {**chat(), "model": "gpt-4o"}))[0] == 529
    assert (await post(session, url, {**chat(), "model": "gpt-4o"}))[0] == 500
    openai.set_behavior("ok")  # replaces the standing behaviour
    assert (await post(session, url, chat()))[0] == 200
    openai.set_behavior("overloaded", model="gpt-4o")  # standing, for one model
    assert (await post(session, url, {**chat(), "model": "gpt-4o"}))[0] == 503
    assert (await post(session, url, chat()))[0] == 200
    async with session.post(openai.url + "/_control/reset") as response:
        assert response.status == 200
    assert openai.stats()["requests"] == 0
    assert openai.stats()["pending_behaviors"] == []
    assert (await post(session, url, {**chat(), "model": "gpt-4o"}))[0] == 200


async def test_control_rejects_bad_input(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    control = openai.url + "/_control/behavior"
    for data in ({"behavior": "nope"}, {"behavior": "ok", "times": 0}, {"behavior": "ok", "bogus": 1}, [1]):
        async with session.post(control, json=data) as response:
            assert response.status == 400, data
            assert "error" in await response.json()
    with pytest.raises(BehaviorError):
        openai.set_behavior("status", status="x")


async def test_last_request_and_history(openai: FakeServer, session: aiohttp.ClientSession) -> None:
    body = chat(temperature=0.5)
    await post(session, openai.base_url + "/chat/completions", body, Authorization="Bearer sk-test")
    last = openai.stats()["last_request"]
    assert last["json"] == body
    assert last["headers"]["authorization"] == "Bearer sk-test"
    assert last["path"] == "/v1/chat/completions"
    assert last["behavior"] == "ok"
    assert [r["json"] for r in openai.requests()] == [body]


def test_parse_spec() -> None:
    assert parse_spec("ok").name == "ok"
    assert parse_spec("stall:2.5").params == {"delay": 2.5}
    assert parse_spec("stall").params == {"delay": 30.0}
    assert parse_spec("status:429;retry_after=3").params == {"status": 429, "retry_after": 3.0}
    assert parse_spec(" die_mid_stream:4 ").params == {"chunks": 4}
    assert parse_spec("stall_mid_stream").params == {"delay": 30.0, "chunks": 2}
    for bad in ("", "nope", "empty:1", "status:x", "ok;delay"):
        with pytest.raises(BehaviorError):
            parse_spec(bad)


# ------------------------------------------------------------------------------------------- Anthropic


async def test_anthropic_ok_non_streamed(anthropic: FakeServer, session: aiohttp.ClientSession) -> None:
    assert anthropic.base_url == anthropic.url == f"http://127.0.0.1:{anthropic.port}"
    url = anthropic.url + "/v1/messages"
    status, _, raw = await post(session, url, message(), **ANTHROPIC_HEADERS)
    assert status == 200
    body = json.loads(raw)
    assert body["id"].startswith("msg_")
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", "claude-sonnet-4-5")
    assert body["content"] == [{"type": "text", "text": " ".join(["tok"] * 8)}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    assert body["usage"] == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 8,
    }
    _, _, raw = await post(session, url, message(max_tokens=3), **ANTHROPIC_HEADERS)
    body = json.loads(raw)
    assert (body["stop_reason"], body["content"][0]["text"], body["usage"]["output_tokens"]) == (
        "max_tokens",
        "tok tok tok",
        3,
    )
    _, _, raw = await post(session, url, message(stop_sequences=["END"]), **ANTHROPIC_HEADERS)
    body = json.loads(raw)
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "END")


async def test_anthropic_auth_and_errors(anthropic: FakeServer, session: aiohttp.ClientSession) -> None:
    url = anthropic.url + "/v1/messages"
    for headers in ({}, {"x-api-key": "k"}, {"anthropic-version": "2023-06-01"}):
        status, _, raw = await post(session, url, message(), **headers)
        assert status == 401
        assert json.loads(raw)["type"] == "error"
        assert json.loads(raw)["error"]["type"] == "authentication_error"
    status, _, raw = await post(session, url, {"model": "m", "messages": []}, **ANTHROPIC_HEADERS)
    assert (status, json.loads(raw)["error"]["type"]) == (400, "invalid_request_error")

    status, headers, raw = await post(session, url, message(), "overloaded", **ANTHROPIC_HEADERS)
    assert status == 529
    assert json.loads(raw) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    status, headers, raw = await post(session, url, message(), "status:429", **ANTHROPIC_HEADERS)
    assert (status, headers["Retry-After"]) == (429, "1")
    assert json.loads(raw)["error"]["type"] == "rate_limit_error"
    status, _, raw = await post(session, url, message(), "status:500", **ANTHROPIC_HEADERS)
    assert (status, json.loads(raw)["error"]["type"]) == (500, "api_error")
    assert anthropic.stats()["by_behavior"] == {"rejected": 4, "overloaded": 1, "status": 2}


async def test_anthropic_stream_event_sequence(anthropic: FakeServer, session: aiohttp.ClientSession) -> None:
    body = message(max_tokens=3, stream=True)
    status, headers, raw = await post(session, anthropic.url + "/v1/messages", body, **ANTHROPIC_HEADERS)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    events = parse_sse(raw)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    datas = [json.loads(data) for _, data in events]
    assert all(d["type"] == name for (name, _), d in zip(events, datas, strict=True))
    start = datas[0]["message"]
    assert start["id"].startswith("msg_")
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 10
    assert datas[1]["content_block"] == {"type": "text", "text": ""}
    assert "".join(d["delta"]["text"] for d in datas[3:6]) == "tok tok tok"
    assert all(d["delta"]["type"] == "text_delta" for d in datas[3:6])
    assert datas[7]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert datas[7]["usage"] == {"output_tokens": 3}


async def test_anthropic_tool_use(anthropic: FakeServer, session: aiohttp.ClientSession) -> None:
    url = anthropic.url + "/v1/messages"
    tools = [
        {"name": "get_weather", "input_schema": {"type": "object"}},
        {"name": "other", "input_schema": {}},
    ]
    body = message("What is the weather in Paris?", tools=tools)
    _, _, raw = await post(session, url, body, **ANTHROPIC_HEADERS)
    reply = json.loads(raw)
    assert reply["stop_reason"] == "tool_use"
    block = reply["content"][0]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert (block["name"], block["input"]) == ("get_weather", {"city": "Paris"})

    _, _, raw = await post(session, url, {**body, "stream": True}, **ANTHROPIC_HEADERS)
    datas = [json.loads(data) for _, data in parse_sse(raw)]
    start = next(d for d in datas if d["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["name"] == "get_weather"
    deltas = [d["delta"] for d in datas if d["type"] == "content_block_delta"]
    assert all(d["type"] == "input_json_delta" for d in deltas)
    assert json.loads("".join(d["partial_json"] for d in deltas)) == {"city": "Paris"}
    assert next(d for d in datas if d["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"

    _, _, raw = await post(session, url, message("hello", tools=tools), **ANTHROPIC_HEADERS)
    assert json.loads(raw)["stop_reason"] == "end_turn"


async def test_anthropic_cache_usage(anthropic: FakeServer, session: aiohttp.ClientSession) -> None:
    url = anthropic.url + "/v1/messages"
    system = [
        {"type": "text", "text": "a" * 400, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "b" * 40},
    ]
    _, _, raw = await post(session, url, message(system=system), **ANTHROPIC_HEADERS)
    usage = json.loads(raw)["usage"]
    assert usage["cache_read_input_tokens"] == 100
    assert usage["cache_creation_input_tokens"] == 0
    assert usage["input_tokens"] == 20  # "b" * 40 + the 40-char user message
    _, _, raw = await post(session, url, message(system="a" * 400), **ANTHROPIC_HEADERS)
    assert json.loads(raw)["usage"]["cache_read_input_tokens"] == 0
    spec = "ok;cache_creation=7;cache_read=0"
    _, _, raw = await post(session, url, message(system=system, stream=True), spec, **ANTHROPIC_HEADERS)
    start = json.loads(parse_sse(raw)[0][1])["message"]["usage"]
    assert (start["cache_creation_input_tokens"], start["cache_read_input_tokens"]) == (7, 0)


async def test_anthropic_mid_stream_faults(anthropic: FakeServer, session: aiohttp.ClientSession) -> None:
    url = anthropic.url + "/v1/messages"
    _, _, raw = await post(session, url, message(stream=True), "error_mid_stream:1", **ANTHROPIC_HEADERS)
    events = parse_sse(raw)
    assert [name for name, _ in events][-2:] == ["content_block_delta", "error"]
    assert json.loads(events[-1][1])["error"]["type"] == "overloaded_error"

    headers = {**ANTHROPIC_HEADERS, BEHAVIOR_HEADER: "die_mid_stream:1"}
    async with session.post(url, json=message(stream=True), headers=headers) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    async with session.get(anthropic.url + "/v1/models") as response:
        assert [m["type"] for m in (await response.json())["data"]] == ["model"] * 3


# ---------------------------------------------------------------------------------- thread and process


def test_thread_runner_openai() -> None:
    with FakeOpenAIInThread(completion_tokens=2) as fake, httpx.Client(base_url=fake.base_url) as client:
        assert fake.port > 0
        response = client.post("/chat/completions", json=chat())
        assert response.json()["choices"][0]["message"]["content"] == "tok tok"
        fake.set_behavior("status", status=503, times=1)
        assert client.post("/chat/completions", json=chat()).status_code == 503
        assert client.post("/chat/completions", json=chat()).status_code == 200
        stats = fake.wait_until(lambda s: s["requests"] == 3)
        assert stats["by_behavior"] == {"ok": 2, "status": 1}
        fake.reset()
        assert fake.stats()["requests"] == 0


def test_thread_runner_anthropic_stall_does_not_block_stop() -> None:
    started = time.perf_counter()
    with FakeAnthropicInThread() as fake:
        fake.set_behavior("stall")  # 30 s
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(fake.url + "/v1/messages", json=message(), headers=ANTHROPIC_HEADERS, timeout=0.2)
    assert time.perf_counter() - started < 3


def test_unused_port_refuses() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"http://127.0.0.1:{unused_port()}/v1/chat/completions", json=chat(), timeout=2)


def test_cli_process() -> None:
    command = [sys.executable, "-m", "tests.fakes.anthropic_upstream", "--port", "0", "--tokens", "3"]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            response = httpx.post(base_url + "/v1/messages", json=message(), headers=ANTHROPIC_HEADERS)
            assert response.json()["content"][0]["text"] == "tok tok tok"
            assert httpx.get(base_url + "/_control/stats").json()["requests"] == 1
        finally:
            process.terminate()
        assert process.wait(5) == 0
