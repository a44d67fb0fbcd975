"""The Responses and Messages routes through a real gateway and a fake OpenAI upstream: the
official openai, anthropic and openrouter clients unchanged, and each generation fetched."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from openrouter import OpenRouter
from openrouter.utils import BackoffStrategy, RetryConfig

from tests.e2e.conftest import FAKE_PROVIDER, MODEL, PRICES, Keys
from tests.e2e.test_faults import poll_record
from tests.gateway import GatewayServer, create_key

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": WEATHER_TOOL["parameters"],
}


def openai_client(gateway: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)


def anthropic_client(gateway: GatewayServer, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=gateway.base_url.removesuffix("/v1"), max_retries=0)


def router(gateway: GatewayServer, key: str) -> OpenRouter:
    return OpenRouter(api_key=key, server_url=gateway.base_url, retry_config=NO_RETRIES)


def cost_of(prompt: int, completion: int) -> float:
    return float(
        (prompt * Decimal(PRICES["prompt_price"]) + completion * Decimal(PRICES["completion_price"]))
        / 1_000_000
    )


def assert_recorded(
    gateway: GatewayServer, key: str, generation_id: str, prompt: int, completion: int
) -> Any:
    """The generation as the openrouter SDK fetches it: chat's api_type, the tokens, the exact cost."""
    with router(gateway, key) as sdk:
        record = sdk.generations.get_generation(id=generation_id).data
    assert record.api_type == "completions"
    assert (record.tokens_prompt, record.tokens_completion) == (prompt, completion)
    assert (record.native_tokens_prompt, record.native_tokens_completion) == (prompt, completion)
    assert record.total_cost == record.usage == cost_of(prompt, completion) > 0
    assert record.provider_name == FAKE_PROVIDER and record.model == MODEL
    return record


def test_responses_create_calls_a_function_and_takes_its_output_back(
    gateway: GatewayServer, keys: Keys, upstream
):
    client = openai_client(gateway, keys.alice)
    first = client.responses.create(model=MODEL, input="What is the weather in Oslo?", tools=[WEATHER_TOOL])
    call = first.output[-1]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    sent = upstream.stats()["last_request"]["json"]
    assert sent["tools"] == [
        {"type": "function", "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"}}
    ]
    assert first.usage is not None
    record = assert_recorded(
        gateway, keys.alice, first.id, first.usage.input_tokens, first.usage.output_tokens
    )
    assert record.finish_reason == "tool_calls" and record.streamed is False

    second = client.responses.create(
        model=MODEL,
        instructions="Answer in one line.",
        input=[
            {"role": "user", "content": "What is the weather in Oslo?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
            {"role": "user", "content": "Thanks. Sum it up."},
        ],
        tools=[WEATHER_TOOL],
        max_output_tokens=6,
    )
    messages = upstream.stats()["last_request"]["json"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "user"]
    assert messages[2]["tool_calls"][0]["id"] == call.call_id and messages[3]["content"] == "rain"
    assert second.output_text and second.status == "incomplete"
    assert second.usage is not None and second.usage.output_tokens == 6


def test_responses_stream_a_function_call_as_typed_events(gateway: GatewayServer, keys: Keys):
    stream = openai_client(gateway, keys.alice).responses.create(
        model=MODEL, input="Weather in Oslo, please", tools=[WEATHER_TOOL], stream=True
    )
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == {"city": "Paris"}
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output[-1].type == "function_call"
    assert completed.usage is not None
    record = assert_recorded(
        gateway, keys.alice, completed.id, completed.usage.input_tokens, completed.usage.output_tokens
    )
    assert record.streamed is True and record.cancelled is False
    assert (
        completed.usage.model_extra is not None and completed.usage.model_extra["cost"] == record.total_cost
    )


def test_the_openrouter_sdk_sends_responses_under_its_strict_models(gateway: GatewayServer, keys: Keys):
    with router(gateway, keys.alice) as sdk:
        result = sdk.responses.send(model=MODEL, input="Say hello.", max_output_tokens=4)
        assert result.status == "incomplete" and result.output_text
        assert result.usage is not None and result.usage.output_tokens == 4
        events = list(
            sdk.responses.send(model=MODEL, input="Weather in Oslo?", tools=[WEATHER_TOOL], stream=True)
        )
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    streamed = events[-1].response  # type: ignore[union-attr]
    for response in (result, streamed):
        assert response.usage is not None
        record = assert_recorded(
            gateway, keys.alice, response.id, response.usage.input_tokens, response.usage.output_tokens
        )
        assert record.total_cost == response.usage.cost


def test_messages_create_and_stream_a_tool_call_on_an_openai_provider(
    gateway: GatewayServer, keys: Keys, upstream
):
    client = anthropic_client(gateway, keys.alice)
    message = client.messages.create(
        model=MODEL,
        max_tokens=200,
        system="You are a weather bot.",
        tools=[ANTHROPIC_TOOL],
        messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
    )
    sent = upstream.stats()["last_request"]["json"]
    assert sent["messages"][0] == {"role": "system", "content": "You are a weather bot."}
    assert sent["tools"][0]["function"]["parameters"] == ANTHROPIC_TOOL["input_schema"]
    assert message.stop_reason == "tool_use"
    tool_use = message.content[-1]
    assert tool_use.type == "tool_use" and tool_use.input == {"city": "Paris"}
    record = assert_recorded(
        gateway, keys.alice, message.id, message.usage.input_tokens, message.usage.output_tokens
    )
    assert record.streamed is False

    with client.messages.stream(
        model=MODEL,
        max_tokens=200,
        tools=[ANTHROPIC_TOOL],
        messages=[
            {"role": "user", "content": "What is the weather in Oslo?"},
            {"role": "assistant", "content": message.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "rain"}],
            },
            {"role": "user", "content": "And the weather tomorrow?"},
        ],
    ) as stream:
        final = stream.get_final_message()
    sent = upstream.stats()["last_request"]["json"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "user"]
    assert final.stop_reason == "tool_use" and final.content[-1].type == "tool_use"
    assert final.content[-1].input == {"city": "Paris"}
    record = assert_recorded(
        gateway, keys.alice, final.id, final.usage.input_tokens, final.usage.output_tokens
    )
    assert record.streamed is True


def test_fallback_models_serve_both_routes(gateway: GatewayServer, keys: Keys):
    response = openai_client(gateway, keys.alice).responses.create(
        model="acme/unreachable", input="hi", extra_body={"models": ["acme/unreachable", MODEL]}
    )
    message = anthropic_client(gateway, keys.alice).messages.create(
        model="acme/unreachable",
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"models": ["acme/unreachable", MODEL]},
    )
    for generation_id in (response.id, message.id):
        with router(gateway, keys.alice) as sdk:
            record = sdk.generations.get_generation(id=generation_id).data
        assert record.model == MODEL and record.provider_name == FAKE_PROVIDER
        assert [attempt.provider_name for attempt in record.provider_responses] == ["Nowhere", FAKE_PROVIDER]


def test_upstream_failures_reach_each_sdk_as_its_own_error(gateway: GatewayServer, keys: Keys, upstream):
    upstream.set_behavior("status", status=429, times=2, retry_after=3)
    with pytest.raises(openai.RateLimitError) as limited:
        openai_client(gateway, keys.alice).responses.create(model=MODEL, input="hi")
    assert limited.value.response.headers["Retry-After"] == "3"
    with pytest.raises(anthropic.RateLimitError) as anthropic_limited:
        anthropic_client(gateway, keys.alice).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert anthropic_limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert anthropic_limited.value.response.headers["Retry-After"] == "3"


def test_a_stream_that_dies_midway_fails_in_each_format_and_is_recorded(
    gateway: GatewayServer, keys: Keys, upstream
):
    upstream.set_behavior("die_mid_stream", times=2, chunks=3)
    events = list(openai_client(gateway, keys.alice).responses.create(model=MODEL, input="hi", stream=True))
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.error is not None
    assert failed.response.output_text  # the text relayed before the failure
    client = anthropic_client(gateway, keys.alice)
    with (
        pytest.raises(anthropic.APIStatusError) as broken,
        client.messages.stream(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        for _ in stream:
            pass
    assert broken.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    with router(gateway, keys.alice) as sdk:
        record = poll_record(sdk, failed.response.id, within=5)
    assert record.finish_reason == "error" and record.streamed is True


@pytest.mark.parametrize(
    ("path", "body", "id_of"),
    [
        ("/responses", {"input": "hi"}, lambda event: event["response"]["id"]),
        (
            "/messages",
            {"max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
            lambda event: event["message"]["id"],
        ),
    ],
)
def test_a_caller_that_leaves_a_stream_leaves_a_cancelled_record(
    gateway: GatewayServer, keys: Keys, upstream, path: str, body: dict[str, Any], id_of: Any
):
    upstream.set_behavior("stall_mid_stream", times=1, delay=30, chunks=2)
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            gateway.base_url + path,
            json={"model": MODEL, "stream": True, **body},
            headers={"Authorization": f"Bearer {keys.alice}"},
        ) as response,
    ):
        assert response.status_code == 200
        data = next(line for line in response.iter_lines() if line.startswith("data: "))
        generation_id = id_of(json.loads(data.removeprefix("data: ")))
    # The gateway drops the upstream call (well before its 30 s stall ends) and records the
    # generation as cancelled.
    with router(gateway, keys.alice) as sdk:
        record = poll_record(sdk, generation_id, within=5)
    assert record.cancelled is True and record.streamed is True
    assert upstream.wait_until(lambda s: s["open_streams"] == 0, within=5)["cancelled_streams"] == 1


def test_credit_limits_and_rate_limits_apply_on_both_routes(gateway: GatewayServer):
    database = gateway.settings.database_url
    broke = create_key(database, "broke", limit_pico=1)
    with pytest.raises(openai.APIStatusError) as refused:
        openai_client(gateway, broke).responses.create(model=MODEL, input="hi")
    assert refused.value.status_code == 402
    with pytest.raises(anthropic.APIStatusError) as anthropic_refused:
        anthropic_client(gateway, broke).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert anthropic_refused.value.status_code == 402
    assert anthropic_refused.value.body["error"]["type"] == "billing_error"  # type: ignore[index]

    one_a_minute = create_key(database, "one-a-minute", requests_per_minute=1)
    openai_client(gateway, one_a_minute).responses.create(model=MODEL, input="hi")
    with pytest.raises(anthropic.RateLimitError):
        anthropic_client(gateway, one_a_minute).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )


def test_the_demo_provider_serves_both_routes(gateway: GatewayServer, keys: Keys):
    response = openai_client(gateway, keys.alice).responses.create(model="genledger/demo", input="hello")
    assert response.output_text.startswith("This is the genledger demo model. You said: hello")
    message = anthropic_client(gateway, keys.alice).messages.create(
        model="genledger/demo", max_tokens=3, messages=[{"role": "user", "content": "hello"}]
    )
    assert message.content[0].text == "This is the"  # type: ignore[union-attr]
