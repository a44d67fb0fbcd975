"""provider.sort, provider.max_price, provider.require_parameters and the :floor / :nitro suffixes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from genledger.config import load_settings
from genledger.core.chat import ChatRequest, MaxPrice, ProviderPreferences
from genledger.core.embeddings import EmbeddingRequest
from genledger.errors import BadRequest, NotFound
from genledger.gateway.catalog import Catalog
from genledger.gateway.measurements import WINDOW_S, Measurements
from genledger.gateway.routing import plan
from genledger.providers import build_provider

SETTINGS = load_settings(
    None,
    providers={
        "alpha": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "display_name": "Alpha"},
        "beta": {"kind": "anthropic", "base_url": "http://127.0.0.1:2", "display_name": "Beta"},
        "gamma": {"kind": "demo", "display_name": "Gamma"},
    },
    models={
        # alpha at 3/4 USD per million, beta at 1/8, gamma at 2/2
        "m/one": {
            "provider": "alpha",
            "fallbacks": [
                {"provider": "beta", "prompt_price": "1", "completion_price": "8"},
                {"provider": "gamma", "prompt_price": "2", "completion_price": "2"},
            ],
            "prompt_price": "3",
            "completion_price": "4",
        },
        "m/cheap": {"provider": "gamma", "prompt_price": "0.1", "completion_price": "0.1"},
        "m/embed": {
            "provider": "alpha",
            "kind": "embeddings",
            "prompt_price": "0.02",
            "completion_price": "0",
        },
    },
)
CATALOG = Catalog.from_settings(SETTINGS)
PROVIDERS = {name: build_provider(name, config) for name, config in SETTINGS.providers.items()}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def route(
    model: str = "m/one", measurements: Measurements | None = None, params: dict | None = None, **prefs
) -> list[str]:
    request = ChatRequest(
        model=model,
        messages=({"role": "user", "content": "x"},),
        params=params or {},
        fallback_models=prefs.pop("fallback_models", ()),
        provider=ProviderPreferences(**prefs),
    )
    return [
        f"{c.entry.slug}@{c.endpoint.provider}"
        for c in plan(request, CATALOG, PROVIDERS, measurements=measurements)
    ]


def test_sort_by_price_puts_the_cheapest_endpoint_first():
    assert route() == ["m/one@alpha", "m/one@beta", "m/one@gamma"]  # configured order
    # prompt + completion: gamma 4, alpha 7, beta 9
    assert route(sort="price") == ["m/one@gamma", "m/one@alpha", "m/one@beta"]


def test_floor_suffix_sorts_by_price_and_records_the_plain_slug():
    assert route("m/one:floor") == ["m/one@gamma", "m/one@alpha", "m/one@beta"]


def test_sort_partition_model_keeps_fallback_models_after_and_none_mixes_them():
    assert route(sort="price", fallback_models=("m/cheap",)) == [
        "m/one@gamma",
        "m/one@alpha",
        "m/one@beta",
        "m/cheap@gamma",
    ]
    assert route(sort="price", sort_partition="none", fallback_models=("m/cheap",))[0] == "m/cheap@gamma"


def test_sort_by_latency_and_throughput_uses_what_the_gateway_measured():
    clock = Clock()
    measured = Measurements(clock)
    # Nothing measured: the configured order stands.
    assert route(sort="latency", measurements=measured) == ["m/one@alpha", "m/one@beta", "m/one@gamma"]
    for ms in (900, 1000, 1100):
        measured.latency("alpha/m/one", ms)
    measured.latency("gamma/m/one", 200)
    measured.throughput("alpha/m/one", 50)
    measured.throughput("beta/m/one", 150)
    # Measured ones first (quickest first), the unmeasured after.
    assert route(sort="latency", measurements=measured) == ["m/one@gamma", "m/one@alpha", "m/one@beta"]
    assert route(sort="throughput", measurements=measured) == ["m/one@beta", "m/one@alpha", "m/one@gamma"]
    assert route("m/one:nitro", measurements=measured) == ["m/one@beta", "m/one@alpha", "m/one@gamma"]
    clock.now += WINDOW_S + 1  # old measurements are forgotten
    assert measured.latency_ms("gamma/m/one") is None
    assert route(sort="latency", measurements=measured) == ["m/one@alpha", "m/one@beta", "m/one@gamma"]


def test_an_explicit_order_wins_over_sort():
    assert route(sort="price", order=("beta",)) == ["m/one@beta", "m/one@gamma", "m/one@alpha"]


def test_max_price_skips_dearer_endpoints():
    assert route(max_price=MaxPrice(prompt=Decimal("2"))) == ["m/one@beta", "m/one@gamma"]
    assert route(max_price=MaxPrice(prompt=Decimal("3"), completion=Decimal("4"))) == [
        "m/one@alpha",
        "m/one@gamma",
    ]
    # Nothing is charged per request or image: a zero cap leaves every endpoint.
    assert len(route(max_price=MaxPrice(request=Decimal("0"), image=Decimal("0")))) == 3


def test_max_price_that_leaves_nothing_says_why():
    with pytest.raises(NotFound, match="max_price") as refused:
        route(max_price=MaxPrice(prompt=Decimal("0.5")))
    error = refused.value
    assert error.status == 404
    skipped = error.metadata["skipped_endpoints"]
    assert [(s["provider"], s["prompt"], s["completion"]) for s in skipped] == [
        ("Alpha", "3", "4"),
        ("Beta", "1", "8"),
        ("Gamma", "2", "2"),
    ]


def test_require_parameters_keeps_only_providers_that_honour_every_parameter():
    # The OpenAI-compatible alpha passes everything on; Anthropic's beta has no seed; the demo
    # honours no sampling option.
    assert route(params={"temperature": 0.2}) == ["m/one@alpha", "m/one@beta", "m/one@gamma"]
    assert route(params={"temperature": 0.2}, require_parameters=True) == ["m/one@alpha", "m/one@beta"]
    assert route(params={"seed": 1}, require_parameters=True) == ["m/one@alpha"]
    with pytest.raises(NotFound, match="seed") as refused:
        route("m/cheap", params={"seed": 1}, require_parameters=True)
    assert refused.value.metadata["unsupported_parameters"] == ["seed"]


def test_an_unknown_model_with_a_suffix_is_still_unknown():
    with pytest.raises(BadRequest, match="m/none:floor is not a valid model ID"):
        route("m/none:floor")


def test_embeddings_route_only_to_embedding_models():
    request = EmbeddingRequest(model="m/embed", inputs=("x",))
    assert [c.endpoint.provider for c in plan(request, CATALOG, PROVIDERS, operation="embeddings")] == [
        "alpha"
    ]
    with pytest.raises(BadRequest, match="embedding model"):
        plan(request, CATALOG, PROVIDERS, operation="chat")
