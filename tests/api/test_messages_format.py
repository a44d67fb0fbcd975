"""The Messages format at the edge: requests parsed into ChatRequest (and rebuilt unchanged
for an Anthropic upstream), answers and relays rendered and validated by the anthropic SDK."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from genledger.api.anthropic_messages import MessageEvents, error_json, message_json, stop_reason
from genledger.api.messages_wire import parse_messages_request
from genledger.core.chat import Choice, Completion, ToolCall
from genledger.core.events import (
    Answer,
    Failed,
    Finish,
    Head,
    ReasoningDelta,
    RefusalDelta,
    Settled,
    TextDelta,
    ToolCallDelta,
)
from genledger.core.failures import UpstreamFailure
from genledger.core.usage import Usage
from genledger.errors import BadRequest
from genledger.providers.anthropic import messages_body
from genledger.providers.base import UpstreamCall

HEAD = Head("gen-abc", "anthropic/claude", "Anthropic", 1700000000)
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)
WEATHER = {
    "name": "get_weather",
    "description": "The weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
# A Messages request using everything the route honours, in the form Anthropic's API takes.
FULL_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 300,
    "system": [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Today is Monday."},
    ],
    "messages": [
        {"role": "user", "content": "What is the weather in Oslo?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                {"type": "text", "text": "And an image:", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ],
        },
    ],
    "temperature": 0.2,
    "top_p": 0.9,
    "top_k": 40,
    "stop_sequences": ["END"],
    "tools": [{**WEATHER, "cache_control": {"type": "ephemeral"}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "metadata": {"user_id": "user-7"},
}


def parse(body: dict[str, Any]) -> Any:
    return parse_messages_request(orjson.dumps(body))


def unexpected(*args: Any, **kwargs: Any) -> UpstreamFailure:
    raise AssertionError(f"the translation refused: {args}")


@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_upstream_gets_the_request_as_the_caller_sent_it(stream: bool):
    """The native pass-through: Messages in, the same Messages request out to Anthropic."""
    chat = parse({**FULL_REQUEST, "model": "anthropic/claude", "stream": stream})
    rebuilt = messages_body(UpstreamCall(chat, "claude-sonnet-4-5"), unexpected, stream=stream)  # type: ignore[arg-type]
    expected = {**FULL_REQUEST, **({"stream": True} if stream else {})}
    assert rebuilt == expected


def test_other_providers_get_the_chat_equivalent():
    chat = parse({**FULL_REQUEST, "model": "acme/chat"})
    assert chat.messages[0] == {"role": "system", "content": [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Today is Monday."},
    ]}  # fmt: skip
    assert chat.messages[2] == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    }
    assert chat.messages[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"}
    assert chat.messages[4]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBOR"},
    }
    assert (chat.max_tokens, chat.user, chat.stream) == (300, "user-7", False)
    assert chat.params["tool_choice"] == "required" and chat.params["parallel_tool_calls"] is False
    assert chat.params["tools"][0]["function"] == {
        "name": "get_weather",
        "parameters": WEATHER["input_schema"],
        "description": "The weather",
    }
    assert chat.params["stop"] == ["END"] and chat.params["top_k"] == 40


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tool_choices_map_to_their_chat_forms(choice: dict[str, Any], expected: Any):
    chat = parse({**FULL_REQUEST, "tool_choice": choice})
    assert chat.params["tool_choice"] == expected and "parallel_tool_calls" not in chat.params


def minimal(**extra: Any) -> dict[str, Any]:
    return {"model": "acme/chat", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (minimal(thinking={"type": "enabled", "budget_tokens": 1024}), "thinking"),
        (minimal(service_tier="auto"), "service_tier"),
        ({"model": "acme/chat", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        (minimal(max_tokens=0), "max_tokens"),
        (minimal(messages=[]), "messages"),
        (minimal(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (
            minimal(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
            "messages[0].content[0].type",
        ),
        (
            minimal(messages=[{"role": "user", "content": [{"type": "thinking", "thinking": "x"}]}]),
            "messages[0].content[0].type",  # only an assistant turn has thinking to send back
        ),
        (
            minimal(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": True}],
                    }
                ]
            ),
            "messages[0].content[0].is_error",
        ),
        (
            minimal(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]),
            "messages[0].content[0].source.type",
        ),
        (minimal(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools[0].type"),
        (minimal(tools=[{"name": "f"}]), "tools[0].input_schema"),
        (minimal(tool_choice={"type": "sometimes"}), "tool_choice.type"),
        (minimal(metadata={"user_id": "u", "team": "t"}), "metadata.team"),
        (minimal(system=[{"type": "image"}]), "system[0].type"),
        (minimal(system=3), "system"),
        (minimal(stop_sequences=[1]), "stop_sequences"),
        (minimal(model=""), "model"),
    ],
)
def test_what_is_not_honoured_is_refused_naming_the_field(body: dict[str, Any], param: str):
    with pytest.raises(BadRequest) as raised:
        parse(body)
    assert raised.value.metadata == {"param": param}


@pytest.mark.parametrize(
    ("reason", "native", "expected"),
    [
        ("stop", "end_turn", "end_turn"),
        ("stop", "stop_sequence", "stop_sequence"),
        ("stop", "stop", "end_turn"),
        ("length", "length", "max_tokens"),
        ("tool_calls", "tool_calls", "tool_use"),
        ("content_filter", "content_filter", "refusal"),
        ("error", "error", "end_turn"),
        (None, None, None),
    ],
)
def test_stop_reasons_are_the_providers_own_or_the_finish_reasons_anthropic_name(
    reason: str | None, native: str | None, expected: str | None
):
    assert stop_reason(reason, native) == expected


def test_a_whole_answer_renders_as_a_message_the_sdk_reads():
    choice = Choice(
        content="Checking.",
        reasoning="think",
        tool_calls=(
            ToolCall("toolu_1", "get_weather", '{"city":"Oslo"}'),
            ToolCall("toolu_2", "f", "not json"),
        ),
        finish_reason="tool_calls",
        native_finish_reason="tool_use",
    )
    usage = Usage(prompt_tokens=100, completion_tokens=7, cached_tokens=60, cache_write_tokens=30)
    message = Message.model_validate(
        message_json(Answer(HEAD, Completion(choices=(choice,), usage=usage), 5))
    )
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[2].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert message.content[3].input == {"arguments": "not json"}  # type: ignore[union-attr]
    assert (message.id, message.stop_reason) == ("gen-abc", "tool_use")
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.cache_creation_input_tokens,
        message.usage.output_tokens,
    ) == (10, 60, 30, 7)


def frames_of(relay: list[Any]) -> list[dict[str, Any]]:
    events = MessageEvents(HEAD)
    raw = events.start() + b"".join(b"".join(events.frames(event)) for event in relay)
    payloads = []
    for frame in raw.split(b"\n\n")[:-1]:
        kind, data = frame.split(b"\n")
        payload = orjson.loads(data.removeprefix(b"data: "))
        assert kind == b"event: " + payload["type"].encode()
        payloads.append(payload)
    return payloads


def test_a_stream_has_one_block_open_at_a_time_and_the_sdk_reads_every_event():
    payloads = frames_of(
        [
            TextDelta(""),
            ReasoningDelta("hm"),
            TextDelta("Hel"),
            RefusalDelta("lo"),
            ToolCallDelta(0, "toolu_1", "get_weather", ""),
            ToolCallDelta(0, arguments='{"city":'),
            ToolCallDelta(0, arguments='"Oslo"}'),
            Finish("tool_calls", "tool_use"),
            Settled(Usage(12, 9, cached_tokens=2), 5),
            TextDelta("ignored after the end"),
        ]
    )
    kinds = [(p["type"], p.get("index")) for p in payloads]
    assert kinds == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    for payload in payloads:
        STREAM_EVENT.validate_python(payload)
    assert payloads[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert (
        payloads[-2]["usage"]["input_tokens"] == 10 and payloads[-2]["usage"]["cache_read_input_tokens"] == 2
    )


def test_a_stream_that_fails_midway_ends_with_an_error_event():
    payloads = frames_of([TextDelta("a"), Failed(529, "Overloaded"), Settled(None, 0)])
    assert payloads[-1] == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert [p["type"] for p in payloads] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "error",
    ]


def test_errors_take_anthropics_type_for_their_status():
    assert error_json(402, "no credit")["error"]["type"] == "billing_error"
    assert error_json(502, "bad gateway")["error"]["type"] == "api_error"
    with pytest.raises(TypeError):
        MessageEvents(HEAD).frames(object())


def test_cache_breakpoints_on_assistant_text_and_images_and_rich_tool_results_are_kept():
    chat = parse(
        minimal(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "u"},
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [
                                {"type": "text", "text": "rain"},
                                {"type": "image", "source": {"type": "url", "url": "v"}},
                            ],
                        }
                    ],
                },
            ],
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
        )
    )
    assert chat.messages[0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert chat.messages[1]["content"] == [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}
    ]
    assert chat.messages[2]["content"] == [
        {"type": "text", "text": "rain"},
        {"type": "image_url", "image_url": {"url": "v"}},
    ]
    assert chat.params["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]


@pytest.mark.parametrize(
    ("raw", "fragment"), [(b"{nope", "not valid JSON"), (b"[1]", "must be a JSON object")]
)
def test_a_body_that_is_no_json_object_is_refused(raw: bytes, fragment: str):
    with pytest.raises(BadRequest, match=fragment):
        parse_messages_request(raw)


def test_an_answers_thinking_sent_back_in_the_next_turn_is_taken_and_not_sent_on():
    """An agent loop appends the answer's content to the conversation as it came: its thinking
    block too. Chat messages carry no reasoning input, so it goes no further."""
    choice = Choice(content="Sunny.", reasoning="think", finish_reason="stop", native_finish_reason="stop")
    answered = message_json(Answer(HEAD, Completion(choices=(choice,), usage=Usage(3, 2)), 5))
    assert [block["type"] for block in answered["content"]] == ["thinking", "text"]
    body = {
        "model": "acme/chat",
        "max_tokens": 50,
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": answered["content"]},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "opaque"}]},
            {"role": "user", "content": "Tomorrow?"},
        ],
    }
    request = parse_messages_request(orjson.dumps(body))
    assert request.messages[1] == {"role": "assistant", "content": "Sunny."}
    assert request.messages[2] == {"role": "assistant", "content": None}
    with pytest.raises(BadRequest) as refused:  # a thinking block with what no thinking block has
        parse_messages_request(
            orjson.dumps(
                {**body, "messages": [{"role": "assistant", "content": [{"type": "thinking", "x": 1}]}]}
            )
        )
    assert refused.value.metadata == {"param": "messages[0].content[0].x"}
