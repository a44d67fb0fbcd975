"""Anthropic's Messages API behind a real gateway: the official clients against the fake Anthropic."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from openrouter import OpenRouter
from openrouter import errors as or_errors
from openrouter.utils import BackoffStrategy, RetryConfig

from genledger.providers.anthropic import DEFAULT_MAX_TOKENS
from tests.fakes import FakeAnthropicInThread
from tests.fakes.anthropic_upstream import TOOL_USE_TOKENS, prompt_usage
from tests.gateway import GatewayServer, create_key

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)
KEY_ENV = "GENLEDGER_TEST_ANTHROPIC_KEY"
ANTHROPIC_SECRET = "sk-ant-test-secret"
PROVIDER = "Anthropic"
MODEL = "anthropic/claude-sonnet"
UPSTREAM_MODEL = "claude-sonnet-4-5"
PRICES = {
    "prompt_price": "3",
    "completion_price": "15",
    "cached_prompt_price": "0.3",
    "cache_write_price": "3.75",
}
UPSTREAM_TIMEOUT_S = 1.0
FAKE_REPLY_TOKENS = 8  # the fake's default reply length
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CACHED_SYSTEM = [
    {"type": "text", "text": "You are a terse weather bot. " * 20, "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "Today is Monday."},
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicInThread]:
    with FakeAnthropicInThread() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeAnthropicInThread) -> None:
    fake.reset()


@pytest.fixture(scope="module")
def gateway(fake: FakeAnthropicInThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('anthropic')}/genledger.db"
    settings: dict[str, Any] = {
        "database_url": database_url,
        "providers": {
            "claude": {
                "kind": "anthropic",
                "base_url": fake.url,
                "api_key_env": KEY_ENV,
                "display_name": PROVIDER,
                "timeout": UPSTREAM_TIMEOUT_S,
            }
        },
        "models": {MODEL: {"provider": "claude", "upstream_model": UPSTREAM_MODEL, **PRICES}},
        # The fault tests fail one endpoint on purpose, many times: keep its circuit closed.
        "routing": {"breaker_failures": 10_000},
    }
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv(KEY_ENV, ANTHROPIC_SECRET)
        with GatewayServer.build(**settings) as server:
            yield server


@pytest.fixture(scope="module")
def key(gateway: GatewayServer) -> str:
    return create_key(gateway.settings.database_url, "anthropic-caller")


def chat(gateway: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)


def record_of(gateway: GatewayServer, key: str, generation_id: str) -> Any:
    with OpenRouter(api_key=key, server_url=gateway.base_url, retry_config=NO_RETRIES) as sdk:
        return sdk.generations.get_generation(id=generation_id).data


def sent(fake: FakeAnthropicInThread) -> dict[str, Any]:
    return fake.stats()["last_request"]


def expected_cost(request_body: dict[str, Any], output_tokens: int, cache_write: int = 0) -> Decimal:
    """The exact cost of what the fake reports for ``request_body``, at the catalog's prices."""
    input_tokens, cache_read = prompt_usage(request_body)
    per_million = (
        input_tokens * Decimal(PRICES["prompt_price"])
        + cache_read * Decimal(PRICES["cached_prompt_price"])
        + cache_write * Decimal(PRICES["cache_write_price"])
        + output_tokens * Decimal(PRICES["completion_price"])
    )
    return per_million / 1_000_000


def test_a_non_streamed_completion_with_a_cached_system_prompt_is_priced_exactly(gateway, key, fake):
    fake.set_behavior("ok", times=1, cache_creation=50)
    completion = chat(gateway, key).chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": CACHED_SYSTEM},
            {"role": "user", "content": "Say hello to the ledger."},
        ],
        user="end-user-7",
    )
    assert completion.choices[0].message.content == " ".join(["tok"] * FAKE_REPLY_TOKENS)
    assert completion.choices[0].finish_reason == "stop"

    request = sent(fake)
    assert request["path"] == "/v1/messages"
    assert request["headers"]["x-api-key"] == ANTHROPIC_SECRET
    assert request["headers"]["anthropic-version"] == "2023-06-01"
    body = request["json"]
    assert body["model"] == UPSTREAM_MODEL and body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert body["system"] == CACHED_SYSTEM
    assert body["messages"] == [{"role": "user", "content": "Say hello to the ledger."}]
    assert body["metadata"] == {"user_id": "end-user-7"}

    input_tokens, cache_read = prompt_usage(body)
    assert cache_read > 0
    prompt_tokens = input_tokens + cache_read + 50
    cost = expected_cost(body, FAKE_REPLY_TOKENS, cache_write=50)
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt_tokens, FAKE_REPLY_TOKENS)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == cache_read
    assert usage.model_extra["cost"] == float(cost)

    record = record_of(gateway, key, completion.id)
    assert record.provider_name == PROVIDER and record.model == MODEL
    assert record.upstream_id and record.upstream_id.startswith("msg_fake")
    assert record.tokens_prompt == prompt_tokens and record.native_tokens_prompt == prompt_tokens
    assert record.tokens_completion == FAKE_REPLY_TOKENS
    assert record.native_tokens_cached == cache_read
    assert record.total_cost == float(cost)
    assert record.cache_discount == float(
        cache_read * (Decimal(PRICES["prompt_price"]) - Decimal(PRICES["cached_prompt_price"])) / 1_000_000
    )
    assert (record.finish_reason, record.native_finish_reason) == ("stop", "end_turn")
    assert record.streamed is False and record.external_user == "end-user-7"


def test_a_streamed_completion_relays_text_and_records_usage(gateway, key, fake):
    stream = chat(gateway, key).chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Stream to me"},
        ],
        max_tokens=5,
        stop=["###"],
        stream=True,
    )
    chunks = list(stream)
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("gen-")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok tok tok tok tok"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None and final.usage.completion_tokens == 5

    body = sent(fake)["json"]
    assert body["stream"] is True and body["system"] == "Be brief."
    assert (body["max_tokens"], body["stop_sequences"]) == (5, ["###"])
    cost = expected_cost(body, 5)
    assert final.usage.model_extra["cost"] == float(cost)

    record = record_of(gateway, key, final.id)
    assert record.streamed is True and record.cancelled is False
    assert (record.finish_reason, record.native_finish_reason) == ("length", "max_tokens")
    assert record.tokens_prompt == prompt_usage(body)[0] and record.tokens_completion == 5
    assert record.total_cost == float(cost)
    assert record.provider_name == PROVIDER


def test_a_tool_call_comes_back_as_openai_tool_calls(gateway, key, fake):
    completion = chat(gateway, key).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("toolu_fake") and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}

    body = sent(fake)["json"]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The current weather in a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == {"type": "auto"}

    record = record_of(gateway, key, completion.id)
    assert (record.finish_reason, record.native_finish_reason) == ("tool_calls", "tool_use")
    assert record.provider_name == PROVIDER
    assert record.tokens_completion == TOOL_USE_TOKENS
    assert record.total_cost == float(expected_cost(body, TOOL_USE_TOKENS))


def test_a_streamed_tool_call_arrives_as_tool_call_deltas(gateway, key):
    chunks = list(
        chat(gateway, key).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Weather in Paris, please"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert calls[0].id and calls[0].function and calls[0].function.name == "get_weather"
    assert {call.index for call in calls} == {0}
    arguments = "".join(call.function.arguments or "" for call in calls if call.function)
    assert json.loads(arguments) == {"city": "Paris"}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]

    record = record_of(gateway, key, chunks[-1].id)
    assert (record.finish_reason, record.native_finish_reason) == ("tool_calls", "tool_use")
    assert record.tokens_completion == TOOL_USE_TOKENS and record.streamed is True


def test_tool_results_go_back_as_tool_result_blocks(gateway, key, fake):
    completion = chat(gateway, key).chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C and sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    # The last user turn holds only the tool result, no "weather": the fake answers in text.
    assert completion.choices[0].finish_reason == "stop"
    assert sent(fake)["json"]["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C and sunny"}],
        },
    ]


def post(gateway: GatewayServer, key: str, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], **body}
    return httpx.post(
        gateway.base_url + "/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    ("behavior", "params", "status", "error_type"),
    [
        ("overloaded", {}, 529, "overloaded_error"),
        ("status", {"status": 529}, 529, "overloaded_error"),
        ("status", {"status": 500}, 502, "api_error"),
        ("status", {"status": 400}, 400, "invalid_request_error"),
        ("status", {"status": 429, "retry_after": 7}, 429, "rate_limit_error"),
        ("stall", {"delay": 3}, 524, None),
    ],
)
def test_upstream_failures_map_to_statuses(gateway, key, fake, behavior, params, status, error_type, stream):
    fake.set_behavior(behavior, times=1, **params)
    response = post(gateway, key, stream=stream)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    assert error["metadata"]["provider_name"] == PROVIDER
    if error_type is not None:
        assert error["metadata"]["raw"]["type"] == "error"
        assert error["metadata"]["raw"]["error"]["type"] == error_type
    if status == 429:
        assert response.headers["Retry-After"] == "7"


@pytest.mark.parametrize(
    ("error_type", "status"),
    [
        ("overloaded_error", 529),
        ("rate_limit_error", 429),
        ("api_error", 502),
        ("invalid_request_error", 400),
        ("timeout_error", 524),
    ],
)
def test_an_error_event_mid_stream_ends_with_an_error_chunk_and_is_recorded(
    gateway, key, fake, error_type, status
):
    fake.set_behavior("error_mid_stream", times=1, chunks=2, error_type=error_type, message="Overloaded")
    response = post(gateway, key, stream=True)
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == "tok tok"
    error_chunk = next(e for e in events if "error" in e)
    assert error_chunk["error"]["code"] == status
    assert error_chunk["error"]["metadata"]["raw"] == {"type": error_type, "message": "Overloaded"}
    assert error_chunk["choices"][0]["finish_reason"] == "error"

    record = record_of(gateway, key, events[0]["id"])
    assert record.finish_reason == "error" and record.streamed is True
    assert record.provider_responses is not None and record.provider_responses[0].status == status
    assert record.tokens_prompt is not None and record.tokens_prompt > 0  # known from message_start


def test_a_caller_that_disconnects_stops_the_upstream_and_leaves_a_cancelled_record(gateway, key, fake):
    fake.set_behavior("stall_mid_stream", times=1, delay=30, chunks=2)
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            gateway.base_url + "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "stream": True},
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        assert response.status_code == 200
        generation_id = json.loads(next(response.iter_lines()).removeprefix("data: "))["id"]
    fake.wait_until(lambda s: s["open_streams"] == 0 and s["cancelled_streams"] == 1, within=5)
    deadline = time.monotonic() + 5
    while True:
        try:
            record = record_of(gateway, key, generation_id)
            break
        except or_errors.NotFoundResponseError:
            assert time.monotonic() < deadline, "no record for the cancelled stream"
            time.sleep(0.02)
    assert record.cancelled is True and record.streamed is True
    assert record.tokens_prompt is not None and record.tokens_prompt > 0  # known from message_start


# ------------------------------------------------------------- Anthropic's Messages API, inbound


def messages_client(gateway: GatewayServer, key: str) -> anthropic.Anthropic:
    """The official Anthropic client pointed at genledger, as a user of the SDK would."""
    return anthropic.Anthropic(api_key=key, base_url=gateway.base_url.removesuffix("/v1"), max_retries=0)


ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
    "cache_control": {"type": "ephemeral"},
}


def test_messages_pass_through_to_anthropic_as_sent_and_are_priced_exactly(gateway, key, fake):
    fake.set_behavior("ok", times=1, cache_creation=40)
    request: dict[str, Any] = {
        "max_tokens": 300,
        "system": CACHED_SYSTEM,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [ANTHROPIC_WEATHER],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "stop_sequences": ["###"],
        "metadata": {"user_id": "end-user-7"},
    }
    sampling = {"temperature": 0.3, "top_k": 20}  # older SDKs' arguments; this one sends them as extras
    message = messages_client(gateway, key).messages.create(model=MODEL, **request, extra_body=sampling)
    body = sent(fake)["json"]
    assert body == {"model": UPSTREAM_MODEL, **request, **sampling}  # nothing lost on the way through
    tool_use = message.content[-1]
    assert tool_use.type == "tool_use" and tool_use.input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    input_tokens, cache_read = prompt_usage(body)
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        input_tokens,
        cache_read,
        40,
    )
    record = record_of(gateway, key, message.id)
    assert record.api_type == "completions" and record.provider_name == PROVIDER
    assert record.native_finish_reason == "tool_use" and record.streamed is False
    assert record.tokens_prompt == input_tokens + cache_read + 40
    assert record.total_cost == float(expected_cost(body, usage.output_tokens, cache_write=40))


def test_messages_stream_from_anthropic_keeps_its_stop_reason_and_usage(gateway, key, fake):
    with messages_client(gateway, key).messages.stream(
        model=MODEL,
        max_tokens=300,
        system="You are a weather bot.",
        tools=[ANTHROPIC_WEATHER],
        messages=[{"role": "user", "content": "The weather in Paris, please"}],
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and "input_json" in events
    assert final.stop_reason == "tool_use" and final.content[-1].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert sent(fake)["json"]["stream"] is True
    record = record_of(gateway, key, final.id)
    assert record.streamed is True and record.native_finish_reason == "tool_use"
    assert (
        record.tokens_prompt == final.usage.input_tokens
        and record.tokens_completion == final.usage.output_tokens
    )
    assert record.total_cost == float(expected_cost(sent(fake)["json"], final.usage.output_tokens))


def test_the_stop_sequence_anthropic_matched_comes_back_whole_and_streamed(gateway, key, fake):
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 300,
        "stop_sequences": ["###", "END"],
        "messages": [{"role": "user", "content": "Count, then stop"}],
    }
    message = messages_client(gateway, key).messages.create(**request)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "###")
    with messages_client(gateway, key).messages.stream(**request) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "###")


def test_an_anthropic_error_reaches_the_anthropic_sdk_in_its_own_shape(gateway, key, fake):
    fake.set_behavior("status", status=529, times=2)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        messages_client(gateway, key).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
