"""Reading OpenAI's chat format: a ``chat.completion`` body and ``chat.completion.chunk`` events."""

from __future__ import annotations

from typing import Any

import pytest

from genledger.core.chat import Choice, Completion, ToolCall
from genledger.core.events import (
    Finish,
    Identified,
    ProviderEvent,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from genledger.core.usage import Usage
from genledger.providers.openai_compat import chunk_events, completion_from_openai

LOGPROBS = {"content": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105], "top_logprobs": []}]}


def body(*choices: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": list(choices),
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        **fields,
    }


def answer(message: dict[str, Any], finish_reason: str = "stop", **fields: Any) -> dict[str, Any]:
    return {
        "index": 0,
        "message": {"role": "assistant", **message},
        "logprobs": None,
        "finish_reason": finish_reason,
        **fields,
    }


# ------------------------------------------------------------------------------------- completion


def test_a_text_answer_becomes_a_completion():
    assert completion_from_openai(body(answer({"content": "Hi there", "refusal": None}))) == Completion(
        choices=(Choice(index=0, content="Hi there", finish_reason="stop", native_finish_reason="stop"),),
        usage=Usage(prompt_tokens=9, completion_tokens=3),
        upstream_id="chatcmpl-1",
        created=1700000000,
        system_fingerprint="fp_44709d6fcb",
    )


def test_tool_calls_are_read_in_order_and_calls_without_a_function_are_dropped():
    message = {
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "call_b", "type": "function", "function": {"name": "now"}},
            {"id": "call_c", "type": "custom", "custom": {"name": "x", "input": "y"}},
        ],
    }
    choice = completion_from_openai(body(answer(message, "tool_calls"))).choices[0]
    assert choice == Choice(
        content=None,
        tool_calls=(
            ToolCall(id="call_a", name="get_weather", arguments='{"city":"Paris"}'),
            ToolCall(id="call_b", name="now", arguments=""),
        ),
        finish_reason="tool_calls",
        native_finish_reason="tool_calls",
    )


def test_reasoning_and_refusal_are_read():
    message = {"content": None, "reasoning": "The user asks for...", "refusal": "I can't help with that."}
    choice = completion_from_openai(body(answer(message))).choices[0]
    assert (choice.content, choice.reasoning, choice.refusal) == (
        None,
        "The user asks for...",
        "I can't help with that.",
    )
    plain = completion_from_openai(body(answer({"content": "x"}))).choices[0]
    assert (plain.reasoning, plain.refusal) == (None, None)
    deepseek = completion_from_openai(body(answer({"content": "x", "reasoning_content": "r"}))).choices[0]
    assert deepseek.reasoning == "r"


def test_logprobs_are_kept_as_sent():
    choice = completion_from_openai(body(answer({"content": "Hi"}, logprobs=LOGPROBS))).choices[0]
    assert choice.logprobs == LOGPROBS


def test_several_choices_keep_their_indices_and_finish_reasons():
    completion = completion_from_openai(
        body(answer({"content": "A"}), answer({"content": "B"}, "length", index=1))
    )
    assert completion.choices == (
        Choice(index=0, content="A", finish_reason="stop", native_finish_reason="stop"),
        Choice(index=1, content="B", finish_reason="length", native_finish_reason="length"),
    )
    assert (completion.finish_reason, completion.native_finish_reason) == ("stop", "stop")


def test_a_choice_without_an_index_takes_its_position():
    first, second = answer({"content": "A"}), answer({"content": "B"})
    del first["index"], second["index"]
    assert [choice.index for choice in completion_from_openai(body(first, second)).choices] == [0, 1]


def test_a_native_finish_reason_is_normalized_and_kept():
    choice = completion_from_openai(body(answer({"content": "x"}, "eos"))).choices[0]
    assert (choice.finish_reason, choice.native_finish_reason) == ("stop", "eos")


def test_usage_keeps_cached_cache_write_and_reasoning_tokens():
    usage = {
        "prompt_tokens": 120,
        "completion_tokens": 40,
        "total_tokens": 160,
        "prompt_tokens_details": {"cached_tokens": 80, "cache_write_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 25},
    }
    completion = completion_from_openai(body(answer({"content": "x"}), usage=usage))
    assert completion.usage == Usage(
        prompt_tokens=120, completion_tokens=40, cached_tokens=80, cache_write_tokens=10, reasoning_tokens=25
    )


@pytest.mark.parametrize(
    ("reported", "count"),
    [(7, 7), (0, 0), (-3, 0), (2.9, 2), (-0.5, 0), (True, 0), (False, 0), ("7", 0), (None, 0), ([1], 0)],
)
def test_a_token_count_is_a_non_negative_whole_number_or_zero(reported, count):
    usage = {
        "prompt_tokens": reported,
        "completion_tokens": 1,
        "completion_tokens_details": {"reasoning_tokens": reported},
    }
    completion = completion_from_openai(body(answer({"content": "x"}), usage=usage))
    assert completion.usage == Usage(prompt_tokens=count, completion_tokens=1, reasoning_tokens=count)


def test_missing_usage_id_created_and_fingerprint_are_none():
    minimal = {"choices": [answer({"content": "x"})]}
    assert completion_from_openai(minimal) == Completion(
        choices=(Choice(content="x", finish_reason="stop", native_finish_reason="stop"),),
        usage=None,
        upstream_id=None,
        created=None,
        system_fingerprint=None,
    )
    assert completion_from_openai(body(answer({"content": "x"}), usage=None)).usage is None
    assert completion_from_openai({**minimal, "created": 17.5}).created is None  # not a time we can use


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "the response is not an object"),
        ("chat.completion", "the response is not an object"),
        (None, "the response is not an object"),
        ({"id": "chatcmpl-1"}, "the response has no choices"),
        ({"choices": {"0": {}}}, "the response has no choices"),
        ({"choices": []}, "the response has no choices"),
        ({"choices": ["x"]}, "a choice is not an object"),
        ({"choices": [{"index": 0, "finish_reason": "stop"}]}, "a choice has no message"),
        ({"choices": [{"index": 0, "message": "Hi"}]}, "a choice has no message"),
    ],
)
def test_a_body_without_the_documented_shape_is_a_value_error(raw, message):
    with pytest.raises(ValueError) as caught:
        completion_from_openai(raw)
    assert str(caught.value) == message


# ----------------------------------------------------------------------------------------- chunks


def chunk(*choices: dict[str, Any], chunk_id: str = "chatcmpl-2", **fields: Any) -> dict[str, Any]:
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": list(choices),
        **fields,
    }


def delta(finish_reason: str | None = None, index: int = 0, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "logprobs": None, "finish_reason": finish_reason}


def events_of(*choices: dict[str, Any], **fields: Any) -> list[ProviderEvent]:
    """The events of a chunk of a stream whose id is already known."""
    return chunk_events(chunk(*choices, **fields), "chatcmpl-2")


def test_the_first_chunk_identifies_the_answer_and_opens_its_text():
    first = chunk(delta(role="assistant", content="", refusal=None))
    assert chunk_events(first, None) == [Identified("chatcmpl-2"), TextDelta("")]


def test_content_becomes_text_with_its_logprobs():
    with_logprobs = delta(content="Hi")
    with_logprobs["logprobs"] = LOGPROBS
    assert events_of(delta(content="Hel")) == [TextDelta("Hel")]
    assert events_of(with_logprobs) == [TextDelta("Hi", 0, LOGPROBS)]


def test_reasoning_becomes_reasoning_deltas_and_empty_reasoning_is_skipped():
    assert events_of(delta(reasoning="Let me think")) == [ReasoningDelta("Let me think")]
    assert events_of(delta(reasoning="", content="ok")) == [TextDelta("ok")]
    # OpenRouter sends an empty content beside reasoning: one event, not an empty text too.
    assert events_of(delta(reasoning="hmm", content="")) == [ReasoningDelta("hmm")]
    # DeepSeek and vLLM name it reasoning_content.
    assert events_of(delta(reasoning_content="r1", content=None)) == [ReasoningDelta("r1")]
    assert events_of(delta(tool_calls=[], content="")) == [TextDelta("")]


def test_refusal_becomes_refusal_deltas():
    assert events_of(delta(refusal="I can't")) == [RefusalDelta("I can't")]
    assert events_of(delta(refusal=None, content="Sure")) == [TextDelta("Sure")]


def test_tool_call_deltas_keep_index_id_name_and_arguments():
    start = {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert events_of(delta(role="assistant", content=None, tool_calls=[start])) == [
        ToolCallDelta(0, id="call_a", name="get_weather", arguments="")
    ]
    more = {"index": 0, "function": {"arguments": '{"city":'}}
    assert events_of(delta(tool_calls=[more])) == [ToolCallDelta(0, arguments='{"city":')]
    second = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "now", "arguments": "{}"}}
    assert events_of(delta(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}, second])) == [
        ToolCallDelta(0, arguments='"Paris"}'),
        ToolCallDelta(1, id="call_b", name="now", arguments="{}"),
    ]


def test_a_tool_call_delta_without_an_index_takes_its_position():
    calls = [{"id": "call_a", "function": {"name": "f"}}, {"id": "call_b", "function": {"name": "g"}}]
    assert events_of(delta(tool_calls=calls)) == [
        ToolCallDelta(0, id="call_a", name="f"),
        ToolCallDelta(1, id="call_b", name="g"),
    ]


@pytest.mark.parametrize(
    ("native", "finish"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "tool_calls"),
        ("eos", "stop"),
        ("SAFETY", "content_filter"),
    ],
)
def test_a_finish_chunk_becomes_a_finish_with_the_normalized_and_native_reasons(native, finish):
    assert events_of(delta(native)) == [Finish(finish, native)]


def test_a_usage_only_chunk_reports_usage_only():
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    assert events_of(usage=usage) == [
        UsageReport(Usage(prompt_tokens=12, completion_tokens=30, cached_tokens=4, reasoning_tokens=20))
    ]


def test_a_null_usage_reports_nothing():
    assert events_of(delta(content="x"), usage=None) == [TextDelta("x")]
    assert events_of(usage=None) == []


def test_the_answer_is_identified_only_when_the_id_changes():
    stream = [
        chunk(delta(role="assistant", content="")),
        chunk(delta(content="a")),
        chunk(delta(content="b"), chunk_id="chatcmpl-3"),
        {"choices": [delta(content="c")]},
    ]
    upstream_id: str | None = None
    seen: list[ProviderEvent] = []
    for each in stream:  # as the provider threads the id through its stream
        for event in chunk_events(each, upstream_id):
            if isinstance(event, Identified):
                upstream_id = event.upstream_id
            seen.append(event)
    assert seen == [
        Identified("chatcmpl-2"),
        TextDelta(""),
        TextDelta("a"),
        Identified("chatcmpl-3"),
        TextDelta("b"),
        TextDelta("c"),
    ]


def test_each_choice_of_several_keeps_its_index():
    assert events_of(delta(content="A"), delta(index=1, content="B")) == [
        TextDelta("A", 0),
        TextDelta("B", 1),
    ]
    call = {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": ""}}
    assert events_of(delta(index=1, reasoning="r", refusal="no", tool_calls=[call])) == [
        ReasoningDelta("r", 1),
        RefusalDelta("no", 1),
        ToolCallDelta(0, id="call_a", name="f", choice=1),
    ]
    assert events_of(delta("stop"), delta("length", index=1)) == [
        Finish("stop", "stop", 0),
        Finish("length", "length", 1),
    ]
