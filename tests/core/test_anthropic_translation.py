"""The Anthropic adapter's translations, request and response, without a network."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import orjson
import pytest

from genledger.core.chat import ChatRequest, Choice, Completion, ToolCall
from genledger.core.events import (
    Finish,
    Identified,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.core.usage import Usage
from genledger.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    StreamTranslator,
    completion_from_message,
    messages_body,
    messages_url,
    usage_from_anthropic,
)
from genledger.providers.base import UpstreamCall

failure = functools.partial(UpstreamFailure, provider_name="Anthropic")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def body_for(*messages: dict[str, Any], **options: Any) -> dict[str, Any]:
    fields = {k: options.pop(k) for k in ("max_tokens", "user") if k in options}
    request = ChatRequest(model="acme/claude", messages=messages, params=options, **fields)
    return messages_body(UpstreamCall(request, "claude-sonnet-4-5"), failure)


def refused(*messages: dict[str, Any], **options: Any) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as caught:
        body_for(*messages, **options)
    assert caught.value.kind is FailureKind.UNSUPPORTED
    return caught.value


# ------------------------------------------------------------------------------------------- request


@pytest.mark.parametrize(
    "base_url",
    ["https://api.anthropic.com", "https://api.anthropic.com/", "https://api.anthropic.com/v1"],
)
def test_the_messages_url_accepts_a_base_url_with_or_without_v1(base_url):
    assert messages_url(base_url) == "https://api.anthropic.com/v1/messages"


def test_a_plain_request_gets_the_upstream_model_and_a_default_max_tokens():
    assert body_for({"role": "user", "content": "hi"}) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "hi"}],
    }
    request = ChatRequest(model="m", messages=({"role": "user", "content": "hi"},), max_tokens=7)
    body = messages_body(UpstreamCall(request, "claude-haiku-4-5"), failure, stream=True)
    assert body["max_tokens"] == 7 and body["stream"] is True


def test_without_max_tokens_the_catalogs_model_limit_is_asked_for():
    request = ChatRequest(model="m", messages=({"role": "user", "content": "hi"},))
    assert (
        messages_body(UpstreamCall(request, "claude", max_output_tokens=1024), failure)["max_tokens"] == 1024
    )
    capped = ChatRequest(model="m", messages=({"role": "user", "content": "hi"},), max_tokens=9)
    assert messages_body(UpstreamCall(capped, "claude", max_output_tokens=1024), failure)["max_tokens"] == 9


def test_sampling_options_stop_and_user_are_translated():
    body = body_for(
        {"role": "user", "content": "hi"},
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop="END",
        user="end-user-7",
        seed=1,
        frequency_penalty=0.5,
    )
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.2, 0.9, 40)
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "end-user-7"}
    assert "seed" not in body and "frequency_penalty" not in body
    assert body_for({"role": "user", "content": "x"}, stop=["a", "b"])["stop_sequences"] == ["a", "b"]


def test_system_and_developer_messages_become_the_system_string():
    body = body_for(
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "hi"},
    )
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_a_system_prompt_with_cache_control_stays_a_list_of_blocks():
    cached = {"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral"}}
    body = body_for(
        {"role": "system", "content": [cached, {"type": "text", "text": "Today is Monday."}]},
        {"role": "user", "content": "hi"},
    )
    assert body["system"] == [cached, {"type": "text", "text": "Today is Monday."}]


def test_consecutive_messages_of_one_role_are_merged_and_empty_ones_dropped():
    body = body_for(
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "four"},
        {"role": "assistant", "content": "five"},
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "one"},
                {"type": "text", "text": "two"},
                {"type": "text", "text": "three"},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "four"}, {"type": "text", "text": "five"}],
        },
    ]


def test_images_become_base64_or_url_sources():
    body = body_for(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
            ],
        }
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_tool_calls_and_tool_results_become_blocks():
    body = body_for(
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "21C"}]},
        {"role": "user", "content": "Thanks"},
        tools=[WEATHER_TOOL],
    )
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "21C"}],
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]


def test_tool_results_open_the_user_turn_they_are_merged_into():
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = body_for(
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "user", "content": "By the way..."},
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
    )
    assert [block["type"] for block in body["messages"][1]["content"]] == ["tool_result", "text"]


def test_tools_and_tool_choice_are_translated():
    body = body_for({"role": "user", "content": "x"}, tools=[WEATHER_TOOL], tool_choice="required")
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    bare = {"type": "function", "function": {"name": "now"}}
    assert body_for({"role": "user", "content": "x"}, tools=[bare])["tools"] == [
        {"name": "now", "input_schema": {"type": "object", "properties": {}}}
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
def test_tool_choice_table(choice, parallel, expected):
    options: dict[str, Any] = {"tools": [WEATHER_TOOL]}
    if choice is not None:
        options["tool_choice"] = choice
    if parallel is not None:
        options["parallel_tool_calls"] = parallel
    assert body_for({"role": "user", "content": "x"}, **options).get("tool_choice") == expected


def test_tool_choice_without_tools_is_dropped():
    assert "tool_choice" not in body_for({"role": "user", "content": "x"}, tool_choice="auto")


@pytest.mark.parametrize(
    ("messages", "options", "fragment"),
    [
        ([{"role": "function", "name": "f", "content": "x"}], {}, "role 'function'"),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], {}, "input_audio"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}],
            {},
            "base64",
        ),
        ([{"role": "tool", "content": "18C"}], {}, "tool_call_id"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{"}}]}],
            {},
            "not valid JSON",
        ),
        ([{"role": "user", "content": "x"}], {"tools": [{"type": "web_search"}]}, "function"),
        ([{"role": "user", "content": "x"}], {"tools": [WEATHER_TOOL], "tool_choice": "maybe"}, "maybe"),
        ([{"role": "user", "content": "x"}], {"n": 2}, "'n'"),
        ([{"role": "user", "content": "x"}], {"stop": ["a", 1]}, "'stop'"),
    ],
)
def test_requests_the_messages_api_cannot_express_are_bad_requests(messages, options, fragment):
    assert fragment in refused(*messages, **options).message


# ------------------------------------------------------------------------------------------ response


def message(content: list[dict[str, Any]], stop_reason: str, **usage: int) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
        }
    )


def test_a_text_message_becomes_a_completion():
    completion = completion_from_message(
        message([{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}], "end_turn"),
        failure,
        created=1700000000,
    )
    assert completion == Completion(
        choices=(
            Choice(index=0, content="Hello there", finish_reason="stop", native_finish_reason="end_turn"),
        ),
        usage=Usage(prompt_tokens=10, completion_tokens=5),
        upstream_id="msg_01",
        created=1700000000,
    )
    assert (completion.finish_reason, completion.native_finish_reason) == ("stop", "end_turn")


def test_a_completion_is_created_now_unless_told_otherwise():
    before = int(time.time())
    created = completion_from_message(message([], "end_turn"), failure).created
    assert created is not None and before <= created <= int(time.time())


def test_tool_use_blocks_become_tool_calls():
    content = [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_10", "name": "now", "input": {}},
    ]
    completion = completion_from_message(message(content, "tool_use"), failure)
    assert completion.choices == (
        Choice(
            content="Checking.",
            tool_calls=(
                ToolCall(id="toolu_9", name="get_weather", arguments='{"city":"Paris"}'),
                ToolCall(id="toolu_10", name="now", arguments="{}"),
            ),
            finish_reason="tool_calls",
            native_finish_reason="tool_use",
        ),
    )
    only_tools = completion_from_message(message(content[1:], "tool_use"), failure)
    assert only_tools.choices[0].content is None
    assert [call.id for call in only_tools.choices[0].tool_calls] == ["toolu_9", "toolu_10"]


def test_thinking_blocks_become_reasoning_and_redacted_thinking_is_dropped():
    content = [
        {"type": "thinking", "thinking": "First, ", "signature": "s1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "thinking", "thinking": "the weather.", "signature": "s2"},
        {"type": "text", "text": "Sunny."},
    ]
    choice = completion_from_message(message(content, "end_turn"), failure).choices[0]
    assert (choice.reasoning, choice.content) == ("First, the weather.", "Sunny.")
    plain = completion_from_message(message([{"type": "text", "text": "x"}], "end_turn"), failure)
    assert plain.choices[0].reasoning is None


@pytest.mark.parametrize(
    ("native", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_stop_reasons_map_to_finish_reasons_and_the_native_one_is_kept(native, finish):
    completion = completion_from_message(message([{"type": "text", "text": "x"}], native), failure)
    choice = completion.choices[0]
    assert (choice.finish_reason, choice.native_finish_reason) == (finish, native)
    assert (completion.finish_reason, completion.native_finish_reason) == (finish, native)


def test_usage_counts_cache_reads_and_writes_in_the_prompt():
    usage = {"input_tokens": 20, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30}
    completion = completion_from_message(message([], "end_turn", **usage), failure)
    assert completion.usage == Usage(
        prompt_tokens=150, completion_tokens=5, cached_tokens=100, cache_write_tokens=30
    )
    assert usage_from_anthropic(None) is None
    # Counting nothing is no report (estimated instead); a count of the completion alone is
    # kept, and the gateway estimates the prompt.
    assert usage_from_anthropic({"input_tokens": -3, "output_tokens": True}) is None
    assert usage_from_anthropic({"input_tokens": 0, "output_tokens": 0}) is None
    assert usage_from_anthropic({"input_tokens": "5", "output_tokens": 7}) == Usage(0, 7)


@pytest.mark.parametrize(
    "raw", [b"", b"<html>oops</html>", b"[]", b'{"type": "message"}', b'{"content": "x"}']
)
def test_a_message_without_the_documented_shape_is_an_invalid_response(raw):
    with pytest.raises(UpstreamFailure) as caught:
        completion_from_message(raw, failure)
    assert caught.value.kind is FailureKind.INVALID_RESPONSE
    assert caught.value.raw == raw.decode()


# -------------------------------------------------------------------------------------------- stream

START_USAGE = Usage(prompt_tokens=60, completion_tokens=1, cached_tokens=40, cache_write_tokens=8)
"""message_start's usage: 12 input tokens plus 40 read from and 8 written to the cache."""


def events(*stop: dict[str, Any], blocks: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_02",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "usage": {
                "input_tokens": 12,
                "cache_read_input_tokens": 40,
                "cache_creation_input_tokens": 8,
                "output_tokens": 1,
            },
        },
    }
    out = [start, {"type": "ping"}]
    for block in blocks:
        out.extend(block)
    return out + list(stop)


def text_block(index: int, *pieces: str) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
            for piece in pieces
        ),
        {"type": "content_block_stop", "index": index},
    ]


def tool_block(index: int, tool_id: str, *pieces: str) -> list[dict[str, Any]]:
    block = {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {}}
    return [
        {"type": "content_block_start", "index": index, "content_block": block},
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        *(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": p},
            }
            for p in pieces
        ),
        {"type": "content_block_stop", "index": index},
    ]


def message_end(stop_reason: str, output_tokens: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]


def translate(stream_events: list[dict[str, Any]]) -> tuple[StreamTranslator, list[ProviderEvent]]:
    translator = StreamTranslator(failure)
    return translator, [out for event in stream_events for out in translator.feed(event)]


def test_a_text_stream_becomes_identified_usage_text_and_finish_events():
    translator, out = translate(events(*message_end("end_turn", 3), blocks=[text_block(0, "Hel", "lo")]))
    assert translator.finished
    assert out == [
        Identified("msg_02"),
        UsageReport(START_USAGE),
        TextDelta(""),
        TextDelta("Hel"),
        TextDelta("lo"),
        UsageReport(Usage(prompt_tokens=60, completion_tokens=3, cached_tokens=40, cache_write_tokens=8)),
        Finish("stop", "end_turn"),
    ]


def test_text_in_a_content_block_start_is_relayed():
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hi"}}
    assert StreamTranslator(failure).feed(start) == [TextDelta("Hi")]


def test_usage_is_known_from_message_start_before_the_stream_ends():
    translator, out = translate(events(blocks=[text_block(0, "Hel")]))
    assert not translator.finished
    assert out == [Identified("msg_02"), UsageReport(START_USAGE), TextDelta(""), TextDelta("Hel")]


def test_tool_use_streams_become_indexed_tool_call_deltas():
    translator, out = translate(
        events(
            *message_end("tool_use", 30),
            blocks=[
                text_block(0, "Checking."),
                tool_block(1, "toolu_a", '{"city": ', '"Paris"}'),
                tool_block(2, "toolu_b", '{"city": "Rome"}'),
            ],
        )
    )
    assert translator.finished
    assert out[3:] == [
        TextDelta("Checking."),
        ToolCallDelta(0, id="toolu_a", name="get_weather", arguments=""),
        ToolCallDelta(0, arguments='{"city": '),
        ToolCallDelta(0, arguments='"Paris"}'),
        ToolCallDelta(1, id="toolu_b", name="get_weather", arguments=""),
        ToolCallDelta(1, arguments='{"city": "Rome"}'),
        UsageReport(Usage(prompt_tokens=60, completion_tokens=30, cached_tokens=40, cache_write_tokens=8)),
        Finish("tool_calls", "tool_use"),
    ]

    def arguments(index: int) -> str:
        return "".join(e.arguments for e in out if isinstance(e, ToolCallDelta) and e.index == index)

    assert json.loads(arguments(0)) == {"city": "Paris"}
    assert json.loads(arguments(1)) == {"city": "Rome"}


def test_thinking_is_relayed_as_reasoning_and_signatures_and_unknown_events_are_skipped():
    thinking = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "some_future_event", "data": 1},
        # arguments for a block that never started as a tool call have no tool call to join
        {
            "type": "content_block_delta",
            "index": 7,
            "delta": {"type": "input_json_delta", "partial_json": "{"},
        },
    ]
    translator, out = translate(events(*message_end("end_turn", 2), blocks=[thinking, text_block(1, "ok")]))
    assert out == [
        Identified("msg_02"),
        UsageReport(START_USAGE),
        TextDelta(""),
        ReasoningDelta("hmm"),
        TextDelta("ok"),
        UsageReport(Usage(prompt_tokens=60, completion_tokens=2, cached_tokens=40, cache_write_tokens=8)),
        Finish("stop", "end_turn"),
    ]
    assert translator.finished


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [("overloaded_error", FailureKind.OVERLOADED), ("api_error", FailureKind.SERVER_ERROR)],
)
def test_an_error_event_mid_stream_is_a_failure_with_the_raw_error(error_type, kind):
    error = {"type": error_type, "message": "Overloaded"}
    translator = StreamTranslator(failure)
    # what was known before the error has already gone out
    assert UsageReport(START_USAGE) in translator.feed(events(blocks=[])[0])
    with pytest.raises(UpstreamFailure) as caught:
        translator.feed({"type": "error", "error": error})
    assert caught.value.kind is kind
    assert caught.value.raw == error
    assert caught.value.message == f"Anthropic stream error: {error_type}: Overloaded"
    assert not translator.finished


def test_an_error_event_without_an_error_object_is_a_server_error():
    with pytest.raises(UpstreamFailure) as caught:
        StreamTranslator(failure).feed({"type": "error"})
    assert caught.value.kind is FailureKind.SERVER_ERROR
    assert caught.value.raw is None


@pytest.mark.parametrize("event", [[], "x", {"no": "type"}, {"type": "message_start"}])
def test_malformed_events_are_invalid_responses(event):
    with pytest.raises(UpstreamFailure) as caught:
        StreamTranslator(failure).feed(event)
    assert caught.value.kind is FailureKind.INVALID_RESPONSE
