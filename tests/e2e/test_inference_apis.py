"""Embeddings, legacy completions and the catalog routes, end to end, through the official
``openai`` and ``openrouter`` clients (strict validation, no retries) on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from openrouter import OpenRouter
from openrouter.utils import BackoffStrategy, RetryConfig

from genledger.core.stores import GenerationFilter
from genledger.ledger import Ledger
from genledger.providers.demo import demo_vector
from tests.e2e.conftest import FAKE_PROVIDER, MODEL, PRICES, Keys, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.fakes.openai_upstream import EMBEDDING_DIMENSIONS, fake_vector
from tests.gateway import GatewayServer, create_key, run_with_ledger

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)
EMBED = "acme/embed"  # on the fake upstream
EMBED_FALLBACK = "acme/embed-fallback"  # on an unreachable provider, then the demo
EMBED_PRICE = "0.02"


@pytest.fixture(scope="module")
def gateway(database_url: str, upstream: FakeOpenAIInThread, keys: Keys) -> Iterator[GatewayServer]:
    settings = gateway_settings(database_url, upstream.api_url)
    embedding = {"kind": "embeddings", "prompt_price": EMBED_PRICE, "completion_price": "0"}
    settings["models"] |= {
        EMBED: {"provider": "fake", "upstream_model": "text-embed", **embedding},
        EMBED_FALLBACK: {"provider": "nowhere", "fallbacks": [{"provider": "demo"}], **embedding},
        "acme/two-endpoints": {
            "provider": "fake",
            "fallbacks": [{"provider": "demo", "prompt_price": "0.05", "completion_price": "0.1"}],
            "context_length": 4096,
            "max_output_tokens": 512,
            **PRICES,
        },
    }
    with GatewayServer.build(**settings) as server:
        yield server


def client(gateway: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)


def router(gateway: GatewayServer, key: str) -> OpenRouter:
    return OpenRouter(api_key=key, server_url=gateway.base_url, retry_config=NO_RETRIES)


def usd(tokens: int, price: str) -> float:
    return float(tokens * Decimal(price) / 1_000_000)


def test_embeddings_as_floats_are_priced_recorded_and_fetched(gateway: GatewayServer, keys: Keys, upstream):
    result = client(gateway, keys.alice).embeddings.create(
        model=EMBED, input=["first text", "second"], encoding_format="float", user="u-9"
    )
    assert [item.embedding for item in result.data] == [
        fake_vector('"first text"', EMBEDDING_DIMENSIONS),
        fake_vector('"second"', EMBEDDING_DIMENSIONS),
    ]
    assert result.model == EMBED
    tokens = result.usage.prompt_tokens
    assert tokens == 2 + 1 and result.usage.total_tokens == tokens  # 10 // 4 + 6 // 4
    cost = result.usage.model_extra["cost"]
    assert cost == usd(tokens, EMBED_PRICE)
    sent = upstream.requests()[-1]
    assert (sent["path"], sent["json"]["model"], sent["json"]["encoding_format"]) == (
        "/v1/embeddings",
        "text-embed",
        "float",
    )
    with router(gateway, keys.alice) as sdk:
        record = sdk.generations.get_generation(id=result.id).data
    assert record.api_type == "embeddings"
    assert (record.model, record.provider_name, record.external_user) == (EMBED, FAKE_PROVIDER, "u-9")
    assert (record.tokens_prompt, record.tokens_completion) == (tokens, 0)
    assert record.total_cost == cost and record.usage == cost
    assert record.streamed is False


def test_embeddings_in_base64_decode_to_the_same_vectors(gateway: GatewayServer, keys: Keys):
    # Without encoding_format the openai client asks for base64 and decodes it itself.
    result = client(gateway, keys.alice).embeddings.create(model=EMBED, input="hello there", dimensions=5)
    expected = fake_vector('"hello there"', 5)
    assert result.data[0].embedding == pytest.approx(expected, rel=1e-6)
    raw = client(gateway, keys.alice).embeddings.create(
        model=EMBED, input=[1, 2, 3], encoding_format="base64"
    )
    assert isinstance(raw.data[0].embedding, str) and raw.usage.prompt_tokens == 3


def test_openrouter_sdk_generates_embeddings(gateway: GatewayServer, keys: Keys):
    with router(gateway, keys.alice) as sdk:
        response = sdk.embeddings.generate(model=EMBED, input="from the sdk")
        record = sdk.generations.get_generation(id=response.id).data
    assert response.data[0].embedding == fake_vector('"from the sdk"', EMBEDDING_DIMENSIONS)
    assert record.api_type == "embeddings" and record.total_cost == response.usage.cost
    # Token arrays too: the SDK types them as numbers and sends [1.0, 2.0, 3.0].
    with router(gateway, keys.alice) as sdk:
        tokens = sdk.embeddings.generate(model=EMBED, input=[1, 2, 3])
    assert tokens.usage.prompt_tokens == 3
    assert tokens.data[0].embedding == fake_vector("[1,2,3]", EMBEDDING_DIMENSIONS)


def test_the_demo_answers_embeddings_when_the_first_endpoint_is_unreachable(
    gateway: GatewayServer, keys: Keys
):
    result = client(gateway, keys.alice).embeddings.create(
        model=EMBED_FALLBACK, input="fallback", encoding_format="float"
    )
    assert result.data[0].embedding == list(demo_vector("fallback", 256))
    assert math.isclose(sum(v * v for v in result.data[0].embedding), 1.0)
    with router(gateway, keys.alice) as sdk:
        record = sdk.generations.get_generation(id=result.id).data
    assert record.provider_name == "genledger-demo"
    assert [attempt.status for attempt in record.provider_responses] == [502, 200]


def test_embeddings_over_the_key_limit_are_refused_before_the_upstream(
    gateway: GatewayServer, database_url: str, upstream
):
    poor = create_key(database_url, "poor-embedder", limit_pico=1)
    with pytest.raises(openai.APIStatusError) as refused:
        client(gateway, poor).embeddings.create(model=EMBED, input="too dear", encoding_format="float")
    assert refused.value.status_code == 402
    assert upstream.requests() == []


def test_a_chat_model_refuses_embeddings_with_a_400(gateway: GatewayServer, keys: Keys):
    with pytest.raises(openai.BadRequestError, match="cannot serve embeddings"):
        client(gateway, keys.alice).embeddings.create(model=MODEL, input="x")


def test_legacy_completions_whole_and_streamed(gateway: GatewayServer, keys: Keys, upstream):
    api = client(gateway, keys.alice)
    completion = api.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=4)
    assert completion.object == "text_completion" and completion.model == MODEL
    assert completion.choices[0].text == " tok tok tok tok"
    assert completion.choices[0].finish_reason == "length"
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == 4
    cost = usage.model_extra["cost"]
    assert cost == usd(usage.prompt_tokens, PRICES["prompt_price"]) + usd(4, PRICES["completion_price"])
    assert upstream.requests()[-1]["path"] == "/v1/completions"

    chunks = list(api.completions.create(model=MODEL, prompt="Stream it", max_tokens=3, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == " tok tok tok"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    with router(gateway, keys.alice) as sdk:
        whole = sdk.generations.get_generation(id=completion.id).data
        streamed = sdk.generations.get_generation(id=chunks[0].id).data
    assert (whole.api_type, whole.total_cost, whole.streamed) == ("completions", cost, False)
    assert (streamed.api_type, streamed.streamed, streamed.tokens_completion) == ("completions", True, 3)
    assert streamed.total_cost == chunks[-1].usage.model_extra["cost"]


def test_catalog_routes_parse_in_the_openrouter_sdk(gateway: GatewayServer, keys: Keys):
    with router(gateway, keys.alice) as sdk:
        endpoints = sdk.endpoints.list(author="acme", slug="two-endpoints").data
        providers = sdk.providers.list().data
        count = sdk.models.count().data.count
        model = sdk.models.get(author="acme", slug="embed").data
    assert endpoints.id == "acme/two-endpoints"
    assert [(e.provider_name, e.tag, e.status) for e in endpoints.endpoints] == [
        (FAKE_PROVIDER, "fake", 0),
        ("genledger-demo", "demo", 0),
    ]
    first, second = endpoints.endpoints
    assert (first.pricing.prompt, first.pricing.completion) == ("0.00000015", "0.0000006")
    assert (second.pricing.prompt, second.pricing.completion) == ("0.00000005", "0.0000001")
    assert (first.context_length, first.max_completion_tokens) == (4096, 512)
    assert first.uptime_last_30m is None and first.quantization is None
    assert {(p.slug, p.name) for p in providers} == {
        ("fake", FAKE_PROVIDER),
        ("nowhere", "Nowhere"),
        ("demo", "genledger-demo"),
    }
    assert count == len(gateway.settings.models)
    assert model.id == "acme/embed" and model.architecture.output_modalities == ["embeddings"]


def test_measured_latency_shows_on_the_endpoint_after_a_request(gateway: GatewayServer, keys: Keys):
    client(gateway, keys.alice).chat.completions.create(
        model="acme/two-endpoints", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    with router(gateway, keys.alice) as sdk:
        endpoint = sdk.endpoints.list(author="acme", slug="two-endpoints").data.endpoints[0]
    assert endpoint.latency_last_30m is not None and endpoint.latency_last_30m.p50 > 0
    assert endpoint.throughput_last_30m is not None and endpoint.throughput_last_30m.p50 > 0


def test_unknown_models_on_catalog_routes_are_404(gateway: GatewayServer, keys: Keys):
    import httpx

    response = httpx.get(
        f"{gateway.base_url}/models/acme/none/endpoints", headers={"Authorization": f"Bearer {keys.alice}"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["metadata"] == {"model": "acme/none"}


def test_routing_fields_over_http(gateway: GatewayServer, keys: Keys):
    api = client(gateway, keys.alice)
    cheap = api.chat.completions.create(
        model="acme/two-endpoints:floor", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert cheap.model_extra["provider"] == "genledger-demo" and cheap.model == "acme/two-endpoints"
    capped = api.chat.completions.create(
        model="acme/two-endpoints",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=2,
        extra_body={"provider": {"max_price": {"prompt": 0.1}}},
    )
    assert capped.model_extra["provider"] == "genledger-demo"
    with pytest.raises(openai.NotFoundError, match="max_price"):
        api.chat.completions.create(
            model="acme/two-endpoints",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"provider": {"max_price": {"prompt": 0.01}}},
        )
    with pytest.raises(openai.BadRequestError, match=r"provider\.zdr"):
        api.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_body={"provider": {"zdr": True}}
        )


def _embedding(gateway: GatewayServer, key: str, headers: dict[str, str]) -> str:
    return client(gateway, key).embeddings.create(model=EMBED, input="once", extra_headers=headers).id


def _completion(gateway: GatewayServer, key: str, headers: dict[str, str]) -> str:
    return client(gateway, key).completions.create(model=MODEL, prompt="once", extra_headers=headers).id


def _response(gateway: GatewayServer, key: str, headers: dict[str, str]) -> str:
    return client(gateway, key).responses.create(model=MODEL, input="once", extra_headers=headers).id


def _message(gateway: GatewayServer, key: str, headers: dict[str, str]) -> str:
    api = anthropic.Anthropic(api_key=key, base_url=gateway.base_url.removesuffix("/v1"), max_retries=0)
    messages: Any = [{"role": "user", "content": "once"}]
    return api.messages.create(model=MODEL, max_tokens=8, messages=messages, extra_headers=headers).id


@pytest.mark.parametrize("call", [_embedding, _completion, _response, _message], ids=lambda c: c.__name__[1:])
def test_every_inference_api_answers_a_retry_with_its_idempotency_key_from_the_first_call(
    gateway: GatewayServer, database_url: str, upstream, call
):
    name = f"idem-{uuid.uuid4().hex[:8]}"
    secret = create_key(database_url, name, limit_pico=10**12)
    retried = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    before = upstream.stats()["requests"]
    first, again = call(gateway, secret, retried), call(gateway, secret, retried)
    assert first == again  # the first answer, its generation id too
    assert upstream.stats()["requests"] == before + 1  # the retry never reached the provider
    other = call(gateway, secret, {"Idempotency-Key": f"other-{uuid.uuid4()}"})
    assert other != first and upstream.stats()["requests"] == before + 2

    async def records(ledger: Ledger) -> tuple[int, int, int]:
        key = await ledger.keys.find_by_name(name)
        page = await ledger.generations.list(GenerationFilter(key_id=key.id), limit=10)
        return len(page.items), key.usage_pico, sum(g.charge_pico for g in page.items)

    count, usage, charged = run_with_ledger(database_url, records)
    assert count == 2 and usage == charged > 0  # charged once per call the provider answered
