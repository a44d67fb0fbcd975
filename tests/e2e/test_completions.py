"""Chat completions through a real gateway, and their generations fetched by the official clients."""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal

import httpx
import openai
import pytest
from openrouter import OpenRouter
from openrouter import errors as or_errors
from openrouter.utils import BackoffStrategy, RetryConfig

from tests.e2e.conftest import FAKE_PROVIDER, MODEL, PRICES, Keys
from tests.gateway import GatewayServer

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)


def usd(tokens: int, price: str) -> Decimal:
    return tokens * Decimal(price) / 1_000_000


def expected_cost(prompt: int, completion: int) -> float:
    return float(usd(prompt, PRICES["prompt_price"]) + usd(completion, PRICES["completion_price"]))


def chat(gateway: GatewayServer, key: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0, **kwargs)


def router(gateway: GatewayServer, key: str) -> OpenRouter:
    return OpenRouter(api_key=key, server_url=gateway.base_url, retry_config=NO_RETRIES)


def test_non_streamed_completion_is_recorded_and_fetched_at_once(gateway: GatewayServer, keys: Keys):
    client = chat(
        gateway, keys.alice, default_headers={"HTTP-Referer": "https://app.example", "X-Title": "App"}
    )
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello to the ledger, please."}],
        max_tokens=12,
        user="end-user-7",
    )
    assert completion.id.startswith("gen-")
    assert completion.model == MODEL
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == 12
    cost = usage.model_extra["cost"]
    assert cost == expected_cost(usage.prompt_tokens, usage.completion_tokens)

    with router(gateway, keys.alice) as sdk:
        record = sdk.generations.get_generation(id=completion.id).data
    assert record.id == completion.id
    assert record.model == MODEL
    assert record.tokens_prompt == usage.prompt_tokens
    assert record.tokens_completion == 12
    assert record.native_tokens_prompt == usage.prompt_tokens
    assert record.total_cost == cost and record.usage == cost
    assert record.streamed is False and record.cancelled is False
    assert record.provider_name == FAKE_PROVIDER
    assert record.upstream_id and record.upstream_id.startswith("chatcmpl-")
    assert record.finish_reason == "length" and record.native_finish_reason == "length"
    assert record.origin == "https://app.example" and record.http_referer == "https://app.example"
    assert record.user_agent and record.user_agent.startswith("OpenAI/Python")
    assert record.external_user == "end-user-7"
    assert record.api_type == "completions"
    assert record.is_byok is False and record.data_region == "global"
    assert record.latency is not None and record.latency > 0
    assert record.generation_time is not None and 0 < record.generation_time <= record.latency
    assert record.provider_responses is not None and record.provider_responses[0].status == 200


def test_streamed_completion_carries_the_generation_id_and_cost(gateway: GatewayServer, keys: Keys):
    stream = chat(gateway, keys.alice).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Stream to me"}], max_tokens=5, stream=True
    )
    chunks = list(stream)
    ids = {chunk.id for chunk in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("gen-")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    assert final.usage.completion_tokens == 5
    cost = final.usage.model_extra["cost"]
    assert cost == expected_cost(final.usage.prompt_tokens, 5)

    with router(gateway, keys.alice) as sdk:
        record = sdk.generations.get_generation(id=final.id).data
    assert record.streamed is True and record.cancelled is False
    assert record.tokens_completion == 5 and record.total_cost == cost
    assert record.finish_reason == "length"
    assert record.latency is not None and record.latency <= record.generation_time + 1000


def test_the_upstream_is_asked_for_usage_on_streams(gateway: GatewayServer, keys: Keys, upstream):
    list(
        chat(gateway, keys.alice).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    sent = upstream.stats()["last_request"]["json"]
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "fast"


def test_every_completion_is_fetchable_immediately_under_concurrency(gateway: GatewayServer, keys: Keys):
    client = chat(gateway, keys.alice)

    def one(i: int) -> str:
        completion = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"request {i}"}],
            max_tokens=3,
            stream=i % 2 == 0,
        )
        if i % 2 == 0:
            return list(completion)[-1].id
        return completion.id

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(one, range(48)))
    assert len(set(ids)) == 48
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {keys.alice}"}) as http:
        for generation_id in ids:
            response = http.get("/generation", params={"id": generation_id})
            assert response.status_code == 200, response.text


def test_another_keys_generation_is_not_found(gateway: GatewayServer, keys: Keys):
    completion = chat(gateway, keys.alice).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "mine"}]
    )
    with router(gateway, keys.bob) as sdk, pytest.raises(or_errors.NotFoundResponseError) as caught:
        sdk.generations.get_generation(id=completion.id)
    assert caught.value.data.error.code == 404
    with router(gateway, keys.bob) as sdk, pytest.raises(or_errors.NotFoundResponseError):
        sdk.generations.get_generation(id="gen-doesnotexist000000000000")


@pytest.mark.parametrize("which", ["missing", "unknown", "disabled", "malformed"])
def test_bad_keys_get_401(gateway: GatewayServer, keys: Keys, which: str):
    headers = {
        "missing": {},
        "unknown": {"Authorization": "Bearer sk-gl-v1-0000"},
        "disabled": {"Authorization": f"Bearer {keys.disabled}"},
        "malformed": {"Authorization": f"Basic {keys.alice}"},
    }[which]
    with httpx.Client(base_url=gateway.base_url, headers=headers) as http:
        for response in (
            http.get("/generation", params={"id": "gen-x"}),
            http.get("/models"),
            http.post(
                "/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
            ),
        ):
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/json"
            assert response.json()["error"]["code"] == 401
    if which in ("unknown", "disabled"):
        secret = headers["Authorization"].split()[1]
        with router(gateway, secret) as sdk, pytest.raises(or_errors.UnauthorizedResponseError):
            sdk.generations.get_generation(id="gen-x")


def test_a_missing_or_empty_id_is_400(gateway: GatewayServer, keys: Keys):
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {keys.alice}"}) as http:
        for params in ({}, {"id": ""}, {"id": "x" * 500}):
            response = http.get("/generation", params=params)
            assert response.status_code == 400
            assert response.json()["error"]["code"] == 400
    with router(gateway, keys.alice) as sdk, pytest.raises(or_errors.BadRequestResponseError):
        sdk.generations.get_generation(id="x" * 500)


def test_models_lists_the_catalog_with_prices(gateway: GatewayServer, keys: Keys):
    models = {m.id: m for m in chat(gateway, keys.alice).models.list()}
    assert MODEL in models
    pricing = models[MODEL].model_extra["pricing"]
    assert Decimal(pricing["prompt"]) == Decimal("0.15") / 1_000_000
    assert Decimal(pricing["completion"]) == Decimal("0.60") / 1_000_000


def test_health_needs_no_key(gateway: GatewayServer):
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}


def test_the_demo_provider_answers_without_network(gateway: GatewayServer, keys: Keys):
    completion = chat(gateway, keys.alice).chat.completions.create(
        model="genledger/demo", messages=[{"role": "user", "content": "ping"}]
    )
    assert "ping" in (completion.choices[0].message.content or "")
    with router(gateway, keys.alice) as sdk:
        record = sdk.generations.get_generation(id=completion.id).data
    assert (
        record.provider_name == "genledger-demo"
        and record.tokens_completion == completion.usage.completion_tokens
    )
