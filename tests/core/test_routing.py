"""Pure routing: which endpoints a request may use, and the circuit breaker."""

from __future__ import annotations

from decimal import Decimal

import pytest

from genledger.config import load_settings
from genledger.core.chat import ChatRequest, ProviderPreferences
from genledger.errors import BadRequest
from genledger.gateway.breakers import Breakers
from genledger.gateway.catalog import Catalog
from genledger.gateway.routing import Planner, plan
from genledger.providers import build_provider

PRICES = {"prompt_price": "1", "completion_price": "2"}
SETTINGS = load_settings(
    None,
    providers={
        "alpha": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "display_name": "Alpha"},
        "beta": {"kind": "openai", "base_url": "http://127.0.0.1:2/v1", "display_name": "Beta"},
        "gamma": {"kind": "demo", "display_name": "Gamma"},
    },
    models={
        "m/one": {
            "provider": "alpha",
            "upstream_model": "one-a",
            "fallbacks": [{"provider": "beta", "upstream_model": "one-b"}, {"provider": "gamma"}],
            **PRICES,
        },
        "m/two": {"provider": "beta", **PRICES, "completion_price": "9"},
    },
)
CATALOG = Catalog.from_settings(SETTINGS)
PROVIDERS = {name: build_provider(name, config) for name, config in SETTINGS.providers.items()}


def route(**kwargs) -> list[tuple[str, str, str]]:
    request = ChatRequest(
        model=kwargs.pop("model", "m/one"), messages=({"role": "user", "content": "x"},), **kwargs
    )
    return [
        (c.entry.slug, c.endpoint.provider, c.endpoint.upstream_model)
        for c in plan(request, CATALOG, PROVIDERS)
    ]


def test_a_models_endpoints_in_configured_order_then_fallback_models():
    assert route(fallback_models=("m/two",)) == [
        ("m/one", "alpha", "one-a"),
        ("m/one", "beta", "one-b"),
        ("m/one", "gamma", "m/one"),
        ("m/two", "beta", "m/two"),
    ]


@pytest.mark.parametrize(
    ("prefs", "expected"),
    [
        (ProviderPreferences(order=("gamma", "Beta")), ["gamma", "beta", "alpha"]),
        (ProviderPreferences(order=("gamma",), allow_fallbacks=False), ["gamma"]),
        (ProviderPreferences(allow_fallbacks=False), ["alpha"]),
        (ProviderPreferences(only=("beta", "GAMMA")), ["beta", "gamma"]),
        (ProviderPreferences(ignore=("Alpha",)), ["beta", "gamma"]),
    ],
)
def test_provider_preferences(prefs, expected):
    assert [provider for _, provider, _ in route(provider=prefs)] == expected


def test_nothing_left_or_unknown_models_are_400():
    with pytest.raises(BadRequest):
        route(provider=ProviderPreferences(only=("nobody",)))
    with pytest.raises(BadRequest):
        route(fallback_models=("m/nope",))


def test_the_dearest_fallback_model_sets_the_reservation():
    from genledger.core.credits import reservation

    entries = [CATALOG.resolve("m/one"), CATALOG.resolve("m/two")]
    request = ChatRequest(model="m/one", messages=({"role": "user", "content": "x"},), max_tokens=10)
    assert max(reservation(request, e.price, None, 100) for e in entries) == reservation(
        request, entries[1].price, None, 100
    )
    assert entries[1].price.completion == Decimal("9")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_consecutive_failures_and_probes_after_the_cooldown():
    clock = Clock()
    breakers = Breakers(failures=3, cooldown=10, clock=clock)
    for _ in range(2):
        breakers.failed("e")
        assert breakers.allow("e")
    breakers.succeeded("e")  # a success resets the count
    for _ in range(3):
        breakers.failed("e")
    assert not breakers.allow("e") and breakers.is_open("e")
    assert breakers.retry_after("e") == 10
    clock.now = 10
    assert breakers.allow("e")  # the probe
    assert not breakers.allow("e")  # only one at a time
    breakers.failed("e")  # the probe failed: open again, for a full cool-down
    assert not breakers.allow("e")
    clock.now = 20
    assert breakers.allow("e")
    breakers.succeeded("e")
    assert breakers.allow("e") and breakers.allow("e") and not breakers.is_open("e")


def test_a_probe_that_never_reports_frees_the_endpoint_after_a_cooldown():
    clock = Clock()
    breakers = Breakers(failures=1, cooldown=5, clock=clock)
    breakers.failed("e")
    clock.now = 5
    assert breakers.allow("e")
    clock.now = 9
    assert not breakers.allow("e")
    clock.now = 10
    assert breakers.allow("e")


def _request(**kwargs) -> ChatRequest:
    return ChatRequest(
        model=kwargs.pop("model", "m/one"), messages=({"role": "user", "content": "x"},), **kwargs
    )


def test_the_planner_remembers_the_plan_of_a_request_without_preferences():
    planner = Planner(CATALOG, PROVIDERS)
    first = planner.plan(_request())
    assert planner.plan(_request()) is first  # the same plan, not made again
    assert first == plan(_request(), CATALOG, PROVIDERS)
    assert planner.plan(_request(model="m/two")) is not first


@pytest.mark.parametrize(
    "kwargs",
    [
        {"provider": ProviderPreferences(order=("beta",))},
        {"provider": ProviderPreferences(ignore=("alpha",))},
        {"fallback_models": ("m/two",)},
    ],
    ids=["order", "ignore", "fallback-models"],
)
def test_a_request_with_preferences_is_planned_on_its_own(kwargs):
    planner = Planner(CATALOG, PROVIDERS)
    plain = planner.plan(_request())
    own = planner.plan(_request(**kwargs))
    assert own == plan(_request(**kwargs), CATALOG, PROVIDERS) != plain
    assert planner.plan(_request()) is plain  # and the plain plan is untouched


def test_a_sort_by_suffix_is_planned_each_time_an_unknown_model_is_refused_each_time():
    planner = Planner(CATALOG, PROVIDERS)
    assert planner.plan(_request(model="m/one:floor")) is not planner.plan(_request(model="m/one:floor"))
    for _ in range(2):
        with pytest.raises(BadRequest):
            planner.plan(_request(model="m/nope"))
