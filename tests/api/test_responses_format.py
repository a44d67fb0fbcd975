"""The Responses format at the edge: requests parsed into ChatRequest, answers and relays
rendered, each rendering validated by the official SDKs' own models (openai, openrouter)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseStreamEvent
from openrouter.components import OpenResponsesResult, ResponsesStreamingResponse
from pydantic import TypeAdapter

from genledger.api.openai_responses import ResponseEvents, response_json
from genledger.api.responses_wire import parse_responses_request
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
from genledger.core.usage import Usage
from genledger.errors import BadRequest

HEAD = Head("gen-abc", "acme/chat", "Acme", 1700000000)
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
OPENAI_EVENT = TypeAdapter(ResponseStreamEvent)


def parse(**body: Any) -> Any:
    return parse_responses_request(orjson.dumps({"model": "acme/chat", **body}))


def test_input_items_become_chat_messages_with_calls_merged_into_the_assistant_turn():
    parsed = parse(
        instructions="Be brief.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me see."}],
            },
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "rain"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "sun"}],
            },
            {
                "role": "user",
                "content": [{"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}],
            },
        ],
        tools=[TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=50,
        text={
            "format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}},
            "verbosity": "low",
        },
        reasoning={"effort": "low"},
        parallel_tool_calls=False,
    )
    chat = parsed.chat
    assert chat.messages == (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {
            "role": "assistant",
            "content": "Let me see.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "rain"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "sun"}]},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}],
        },
    )
    assert chat.max_tokens == 50
    assert chat.params == {
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": TOOL["parameters"]}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "verbosity": "low",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}},
        },
        "reasoning": {"effort": "low"},
    }


def test_plain_text_formats_and_sampling_options_pass_on():
    chat = parse(
        input=[{"role": "user", "content": "hi"}],
        text={"format": {"type": "text"}},
        temperature=0.5,
        seed=7,
        tools=[{"type": "function", "name": "f", "strict": True}],
    ).chat
    assert chat.params == {
        "temperature": 0.5,
        "seed": 7,
        "tools": [{"type": "function", "function": {"name": "f", "strict": True}}],
    }
    assert parse(input="hi", text={"verbosity": "high"}).chat.params == {"verbosity": "high"}
    assert parse(input="hi", text={"format": {"type": "json_object"}}).chat.params == {
        "response_format": {"type": "json_object"}
    }


def test_a_function_call_without_an_assistant_message_before_it_starts_one():
    chat = parse(
        input=[
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ]
    ).chat
    assert chat.messages[0]["content"] is None and chat.messages[0]["tool_calls"][0]["id"] == "c1"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "hi", "store": True}, "store"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "truncation": "auto"}, "truncation"),
        ({"input": "hi", "include": ["reasoning.encrypted_content"]}, "include"),
        ({"input": "hi", "service_tier": "flex"}, "service_tier"),
        ({"input": ["hi"]}, "input[0]"),
        ({"input": "hi", "text": {"format": {"type": "json_object", "strict": True}}}, "text.format.strict"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "reasoning", "summary": [], "effort": "x"}]}, "input[0].effort"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}]},
            "input[0].content[0].type",
        ),
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "temperature": "hot"}, "temperature"),
        ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": "hi", "reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({"input": [{"role": "critic", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
    ],
)
def test_what_is_not_honoured_is_refused_naming_the_field(body: dict[str, Any], param: str):
    with pytest.raises(BadRequest) as raised:
        parse(**body)
    assert raised.value.metadata == {"param": param}


def test_model_is_required_unless_models_names_one():
    with pytest.raises(BadRequest):
        parse_responses_request(orjson.dumps({"input": "hi"}))
    parsed = parse_responses_request(orjson.dumps({"models": ["a/b", "c/d"], "input": "hi"}))
    assert (parsed.chat.model, parsed.chat.fallback_models) == ("a/b", ("a/b", "c/d"))


USAGE = Usage(10, 5, cached_tokens=4)


def answer(choice: Choice, usage: Usage | None = USAGE) -> Answer:
    return Answer(HEAD, Completion(choices=(choice,), usage=usage), cost_pico=123_000_000)


def test_a_whole_answer_renders_every_output_item_and_validates_in_both_sdks():
    request = parse(input="hi", tools=[TOOL], instructions="x", temperature=0.5)
    choice = Choice(
        content="Checking.",
        reasoning="think",
        refusal="no",
        tool_calls=(ToolCall("c1", "get_weather", '{"city":"Oslo"}'),),
        finish_reason="tool_calls",
        native_finish_reason="tool_calls",
    )
    body = response_json(request, answer(choice))
    assert [item["type"] for item in body["output"]] == ["reasoning", "message", "message", "function_call"]
    assert body["status"] == "completed" and body["output_text"] == "Checking."
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 4, "cache_write_tokens": 0}
    assert body["usage"]["cost"] == 0.000123
    assert OpenAIResponse.model_validate(body).output[3].call_id == "c1"  # type: ignore[union-attr]
    result = OpenResponsesResult.model_validate(body)
    assert result.tools[0].name == "get_weather" and result.temperature == 0.5  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_a_cut_answer_is_incomplete_with_its_reason(finish: str, reason: str):
    body = response_json(parse(input="hi"), answer(Choice(content="a", finish_reason=finish), usage=None))
    assert (body["status"], body["incomplete_details"], body["usage"]) == (
        "incomplete",
        {"reason": reason},
        None,
    )
    OpenResponsesResult.model_validate(body)


def frames_of(events: ResponseEvents, relay: list[Any]) -> list[dict[str, Any]]:
    raw = events.start() + b"".join(b"".join(events.frames(event)) for event in relay)
    payloads = []
    for frame in raw.split(b"\n\n")[:-1]:
        kind, data = frame.split(b"\n")
        payload = orjson.loads(data.removeprefix(b"data: "))
        assert kind == b"event: " + payload["type"].encode()
        payloads.append(payload)
    return payloads


def test_a_stream_opens_and_closes_each_item_in_order_and_validates_in_both_sdks():
    request = parse(input="hi", tools=[TOOL], stream=True)
    relay = [
        TextDelta(""),
        ReasoningDelta("hm"),
        TextDelta("Hel"),
        TextDelta("lo"),
        RefusalDelta("no"),
        ToolCallDelta(0, "c1", "get_weather", ""),
        ToolCallDelta(0, arguments='{"ci'),
        ToolCallDelta(1, "c2", "get_weather", "{}"),
        ToolCallDelta(0, arguments='ty":"Oslo"}'),
        Finish("tool_calls", "tool_calls"),
        Settled(Usage(10, 5), 2_000_000),
        TextDelta("ignored after the end"),
    ]
    payloads = frames_of(ResponseEvents(request, HEAD), relay)
    for payload in payloads:
        OPENAI_EVENT.validate_python(payload)
        ResponsesStreamingResponse.model_validate({"data": payload})
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    kinds = [p["type"] for p in payloads]
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 5
    deltas = [p["delta"] for p in payloads if p["type"] == "response.function_call_arguments.delta"]
    assert deltas == ['{"ci', "{}", 'ty":"Oslo"}']
    completed = payloads[-1]
    assert completed["type"] == "response.completed"
    output = completed["response"]["output"]
    assert [item["type"] for item in output] == [
        "reasoning",
        "message",
        "message",
        "function_call",
        "function_call",
    ]
    assert output[1]["content"][0]["text"] == "Hello" and output[2]["content"][0]["refusal"] == "no"
    assert [(item["call_id"], item["arguments"]) for item in output[3:]] == [
        ("c1", '{"city":"Oslo"}'),
        ("c2", "{}"),
    ]
    assert completed["response"]["usage"]["cost"] == 0.000002
    OpenResponsesResult.model_validate(completed["response"])


def test_a_stream_cut_by_the_token_limit_ends_incomplete():
    payloads = frames_of(
        ResponseEvents(parse(input="hi"), HEAD),
        [TextDelta("a"), Finish("length", "length"), Settled(None, 0)],
    )
    assert payloads[-1]["type"] == "response.incomplete"
    assert payloads[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.parametrize(("status", "code"), [(429, "rate_limit_exceeded"), (502, "server_error")])
def test_a_stream_that_fails_midway_ends_with_response_failed(status: int, code: str):
    relay = [TextDelta("a"), Failed(status, "upstream broke", {"provider_name": "Acme"}), Settled(None, 0)]
    payloads = frames_of(ResponseEvents(parse(input="hi"), HEAD), relay)
    failed = payloads[-1]
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"] == {
        "code": code,
        "message": "upstream broke",
        "metadata": {"provider_name": "Acme"},
    }
    assert failed["response"]["output"][0]["content"][0]["text"] == "a"
    # The message the failure cut short is incomplete, in its done event and in the response.
    done = next(p for p in payloads if p["type"] == "response.output_item.done")
    assert done["item"]["status"] == "incomplete"
    assert failed["response"]["output"][0]["status"] == "incomplete"
    OPENAI_EVENT.validate_python(done)
    OPENAI_EVENT.validate_python(failed)
    ResponsesStreamingResponse.model_validate({"data": failed})


def test_a_relay_end_that_is_no_event_is_a_type_error():
    with pytest.raises(TypeError):
        ResponseEvents(parse(input="hi"), HEAD).frames(object())


def test_an_answers_reasoning_item_sent_back_as_input_is_taken_and_not_sent_on():
    """An agent loop feeds ``response.output`` back as the next input, reasoning item and all."""
    choice = Choice(content="Sunny.", reasoning="think", finish_reason="stop", native_finish_reason="stop")
    answered = response_json(parse(input="Weather?"), answer(choice))
    assert [item["type"] for item in answered["output"]] == ["reasoning", "message"]
    request = parse(input=[{"role": "user", "content": "Weather?"}, *answered["output"]])
    assert [m["role"] for m in request.chat.messages] == ["user", "assistant"]
    assert request.chat.messages[1]["content"] == "Sunny."
