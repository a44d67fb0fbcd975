"""Rendering a typed answer as OpenAI's chat format: the whole body, chunk frames, and SSE."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
import pytest

from genledger.api.openai_chat import SSE_DONE, ChunkFrames, completion_json, sse, usage_json
from genledger.core.chat import Choice, Completion, ToolCall
from genledger.core.events import (
    Answer,
    Failed,
    Finish,
    Head,
    ReasoningDelta,
    RefusalDelta,
    Relay,
    RelayEvent,
    Settled,
    TextDelta,
    ToolCallDelta,
)
from genledger.core.usage import Usage

HEAD = Head(generation_id="gen-1700000000-abc", model="acme/chat-1", provider_name="Acme", created=1700000500)
COST_PICO = 1_234_500_000  # 0.0012345 USD
USAGE = Usage(
    prompt_tokens=120, completion_tokens=40, cached_tokens=80, cache_write_tokens=10, reasoning_tokens=25
)
USAGE_JSON = {
    "prompt_tokens": 120,
    "completion_tokens": 40,
    "total_tokens": 160,
    "cost": 0.0012345,
    "is_byok": False,
    "prompt_tokens_details": {"cached_tokens": 80},
    "completion_tokens_details": {"reasoning_tokens": 25},
}
CHUNK_HEAD = {
    "id": "gen-1700000000-abc",
    "object": "chat.completion.chunk",
    "created": 1700000500,
    "model": "acme/chat-1",
    "provider": "Acme",
}


def rendered(*choices: Choice, usage: Usage | None = USAGE, **fields: Any) -> dict[str, Any]:
    completion = Completion(choices=choices, usage=usage, upstream_id="chatcmpl-upstream", **fields)
    return completion_json(Answer(HEAD, completion, COST_PICO))


# ------------------------------------------------------------------------------------- completion


def test_usage_json_has_the_cost_in_usd_and_the_token_details():
    assert usage_json(USAGE, COST_PICO) == USAGE_JSON
    assert usage_json(Usage(), 0) == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cost": 0.0,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_a_completion_is_rendered_under_our_id_model_and_provider():
    choice = Choice(content="Hello there", finish_reason="stop", native_finish_reason="end_turn")
    assert rendered(choice, created=1700000000, system_fingerprint="fp_1") == {
        "id": "gen-1700000000-abc",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "acme/chat-1",
        "provider": "Acme",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there"},
                "finish_reason": "stop",
                "native_finish_reason": "end_turn",
                "logprobs": None,
            }
        ],
        "usage": USAGE_JSON,
    }


def test_without_an_upstream_created_the_heads_is_used_and_the_fingerprint_is_null():
    body = rendered(Choice(content="x"))
    assert body["created"] == 1700000500
    assert "system_fingerprint" in body and body["system_fingerprint"] is None


def test_without_usage_there_is_no_usage_key():
    assert "usage" not in rendered(Choice(content="x"), usage=None)


def test_tool_calls_are_rendered_as_functions():
    calls = (ToolCall("call_a", "get_weather", '{"city":"Paris"}'), ToolCall("call_b", "now"))
    choice = Choice(tool_calls=calls, finish_reason="tool_calls", native_finish_reason="tool_use")
    assert rendered(choice)["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "call_b", "type": "function", "function": {"name": "now", "arguments": ""}},
        ],
    }


def test_reasoning_and_refusal_are_rendered_only_when_present():
    choice = Choice(content=None, reasoning="Thinking.", refusal="I can't.")
    assert rendered(choice)["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": "I can't.",
        "reasoning": "Thinking.",
    }
    assert rendered(Choice(content="ok"))["choices"][0]["message"] == {"role": "assistant", "content": "ok"}


def test_every_choice_is_rendered_with_its_index_and_logprobs():
    logprobs = {"content": [{"token": "B", "logprob": -0.5, "bytes": [66], "top_logprobs": []}]}
    body = rendered(
        Choice(index=0, content="A", finish_reason="stop", native_finish_reason="stop"),
        Choice(
            index=1, content="B", finish_reason="length", native_finish_reason="length", logprobs=logprobs
        ),
    )
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in body["choices"]] == [
        (0, "A", "stop"),
        (1, "B", "length"),
    ]
    assert [c["logprobs"] for c in body["choices"]] == [None, logprobs]


# ----------------------------------------------------------------------------------------- frames


def parse(frame: bytes) -> dict[str, Any]:
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    return orjson.loads(frame[len(b"data: ") : -2])


def chunk(*choices: dict[str, Any]) -> dict[str, Any]:
    return {**CHUNK_HEAD, "choices": list(choices)}


def choice(
    delta: dict[str, Any], index: int = 0, finish: str | None = None, native: str | None = None
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish, "native_finish_reason": native}


def test_text_frames_carry_the_head_and_the_role_only_on_a_choices_first_delta():
    frames = ChunkFrames(HEAD)
    sent = [
        frames.delta(TextDelta("")),
        frames.delta(TextDelta("Hel")),
        frames.delta(TextDelta("B", choice=1)),
        frames.delta(TextDelta("lo")),
        frames.delta(TextDelta("!", choice=1)),
    ]
    assert [parse(frame) for frame in sent] == [
        chunk(choice({"content": "", "role": "assistant"})),
        chunk(choice({"content": "Hel"})),
        chunk(choice({"content": "B", "role": "assistant"}, index=1)),
        chunk(choice({"content": "lo"})),
        chunk(choice({"content": "!"}, index=1)),
    ]


def test_logprobs_are_rendered_on_a_text_frame_only_when_present():
    frames = ChunkFrames(HEAD)
    logprobs = {"content": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105], "top_logprobs": []}]}
    assert parse(frames.delta(TextDelta("Hi", logprobs=logprobs)))["choices"] == [
        {**choice({"content": "Hi", "role": "assistant"}), "logprobs": logprobs}
    ]
    assert "logprobs" not in parse(frames.delta(TextDelta("!")))["choices"][0]


def test_a_finish_renders_an_empty_delta_with_both_reasons():
    frames = ChunkFrames(HEAD)
    frames.delta(TextDelta(""))
    assert parse(frames.delta(Finish("stop", "end_turn"))) == chunk(
        choice({}, finish="stop", native="end_turn")
    )
    frames.delta(TextDelta("", choice=1))
    assert parse(frames.delta(Finish("length", "max_tokens", choice=1))) == chunk(
        choice({}, index=1, finish="length", native="max_tokens")
    )


def test_tool_call_frames_name_the_call_only_when_it_starts():
    frames = ChunkFrames(HEAD)
    start = frames.delta(ToolCallDelta(0, id="call_a", name="get_weather"))
    more = frames.delta(ToolCallDelta(0, arguments='{"city":"Paris"}'))
    named_only = frames.delta(ToolCallDelta(1, name="now", arguments="{}"))
    assert parse(start) == chunk(
        choice(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"arguments": "", "name": "get_weather"},
                    }
                ],
                "role": "assistant",
            }
        )
    )
    assert parse(more) == chunk(
        choice({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Paris"}'}}]})
    )
    assert parse(named_only) == chunk(
        choice({"tool_calls": [{"index": 1, "function": {"arguments": "{}", "name": "now"}}]})
    )


def test_reasoning_and_refusal_frames():
    frames = ChunkFrames(HEAD)
    assert parse(frames.delta(ReasoningDelta("hmm"))) == chunk(
        choice({"content": "", "reasoning": "hmm", "role": "assistant"})
    )
    assert parse(frames.delta(RefusalDelta("I can't"))) == chunk(choice({"refusal": "I can't"}))


def test_a_failure_renders_openrouters_error_chunk():
    frames = ChunkFrames(HEAD)
    frames.delta(TextDelta(""))
    metadata = {"provider_name": "Acme", "raw": {"type": "overloaded_error"}}
    error_choice = choice({"content": ""}, finish="error", native="error")
    assert parse(frames.failed(Failed(529, "Acme is overloaded", metadata))) == {
        **CHUNK_HEAD,
        # OpenRouter's canonical error type first: the openrouter SDK requires it.
        "error": {
            "code": 529,
            "message": "Acme is overloaded",
            "metadata": {"error_type": "provider_overloaded", **metadata},
        },
        "choices": [error_choice],
    }
    assert parse(frames.failed(Failed(500, "Internal Server Error"))) == {
        **CHUNK_HEAD,
        "error": {"code": 500, "message": "Internal Server Error"},
        "choices": [error_choice],
    }


def test_settled_renders_the_usage_chunk_with_the_cost():
    frames = ChunkFrames(HEAD)
    assert parse(frames.settled(Settled(USAGE, COST_PICO))) == {
        **CHUNK_HEAD,
        "choices": [],
        "usage": USAGE_JSON,
    }
    assert parse(frames.settled(Settled(None, 0))) == {
        **CHUNK_HEAD,
        "choices": [],
        "usage": usage_json(Usage(), 0),
    }


def test_an_end_is_not_a_delta():
    with pytest.raises(TypeError):
        ChunkFrames(HEAD).delta(Settled(None, 0))


# -------------------------------------------------------------------------------------------- sse


async def relayed(*events: RelayEvent, closed: list[str] | None = None) -> AsyncGenerator[RelayEvent, None]:
    try:
        for event in events:
            yield event
    finally:
        if closed is not None:
            closed.append("closed")


async def test_sse_renders_every_event_then_done():
    events: list[RelayEvent] = [
        TextDelta(""),
        TextDelta("Hi"),
        Finish("stop", "stop"),
        Settled(USAGE, COST_PICO),
    ]
    frames = [frame async for frame in sse(Relay(HEAD, relayed(*events)))]
    assert frames[-1] == SSE_DONE == b"data: [DONE]\n\n"
    assert [parse(frame) for frame in frames[:-1]] == [
        chunk(choice({"content": "", "role": "assistant"})),
        chunk(choice({"content": "Hi"})),
        chunk(choice({}, finish="stop", native="stop")),
        {**CHUNK_HEAD, "choices": [], "usage": USAGE_JSON},
    ]


async def test_sse_renders_a_failure_then_the_usage_recorded_so_far():
    events: list[RelayEvent] = [TextDelta("Hi"), Failed(502, "broken"), Settled(None, 0)]
    frames = [frame async for frame in sse(Relay(HEAD, relayed(*events)))]
    assert [parse(frame).get("error") for frame in frames[:-1]] == [
        None,
        {"code": 502, "message": "broken"},
        None,
    ]
    assert parse(frames[2])["usage"] == usage_json(Usage(), 0)
    assert frames[3] == SSE_DONE
    assert len(frames) == 4


async def test_sse_closes_the_relay_when_the_consumer_stops_early():
    closed: list[str] = []
    relay = Relay(HEAD, relayed(TextDelta(""), TextDelta("Hi"), Settled(None, 0), closed=closed))
    stream = sse(relay)
    assert parse(await anext(stream)) == chunk(choice({"content": "", "role": "assistant"}))
    assert closed == []
    await stream.aclose()
    assert closed == ["closed"]
    with pytest.raises(StopAsyncIteration):
        await anext(relay.events)
