"""Fallbacks across providers, every failure mapped, and the circuit breaker, end to end.

Two fake OpenAI-compatible upstreams: a primary and a secondary. The official clients
must see well-formed answers or errors, and parse every resulting generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openrouter import OpenRouter
from openrouter.utils import BackoffStrategy, RetryConfig

from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)
PRICES = {"prompt_price": "0.15", "completion_price": "0.60"}
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def primary() -> Iterator[FakeOpenAIInThread]:
    with FakeOpenAIInThread() as fake:
        yield fake


@pytest.fixture(scope="module")
def secondary() -> Iterator[FakeOpenAIInThread]:
    with FakeOpenAIInThread() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh(primary: FakeOpenAIInThread, secondary: FakeOpenAIInThread) -> None:
    primary.reset()
    secondary.reset()


def settings(database: str, primary, secondary, **routing: Any) -> dict[str, Any]:
    return {
        "database_url": database,
        "routing": {"breaker_failures": 10_000, **routing},
        "providers": {
            "primary": {
                "kind": "openai",
                "base_url": primary.api_url,
                "display_name": "Primary",
                "timeout": 1,
            },
            "secondary": {"kind": "openai", "base_url": secondary.api_url, "display_name": "Secondary"},
            "dead": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "display_name": "Dead"},
        },
        "models": {
            "acme/ha": {"provider": "primary", "fallbacks": [{"provider": "secondary"}], **PRICES},
            "acme/solo": {"provider": "primary", **PRICES},
            "acme/backup": {"provider": "secondary", **PRICES, "completion_price": "1.20"},
            "acme/dead-first": {"provider": "dead", "fallbacks": [{"provider": "secondary"}], **PRICES},
        },
    }


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('fallbacks')}/genledger.db"


@pytest.fixture(scope="module")
def secret(database: str) -> str:
    return create_key(database, "caller")


@pytest.fixture(scope="module")
def gateway(database, secret, primary, secondary) -> Iterator[GatewayServer]:
    with GatewayServer.build(**settings(database, primary, secondary)) as server:
        yield server


def ask(gateway: GatewayServer, secret: str, stream: bool = False, **body: Any) -> httpx.Response:
    payload = {"model": "acme/ha", "messages": MESSAGES, "stream": stream, **body}
    return httpx.post(
        gateway.base_url + "/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=15,
    )


def generation_id(response: httpx.Response) -> str:
    if response.headers["content-type"].startswith("text/event-stream"):
        first = next(line for line in response.text.splitlines() if line.startswith("data: {"))
        return httpx.Response(200, content=first[6:]).json()["id"]
    return response.json()["id"]


def record(gateway: GatewayServer, secret: str, gen_id: str):
    with OpenRouter(api_key=secret, server_url=gateway.base_url, retry_config=NO_RETRIES) as sdk:
        return sdk.generations.get_generation(id=gen_id).data


RETRYABLE = [
    ("status", {"status": 500}, 500),
    ("status", {"status": 502}, 502),
    ("overloaded", {}, 503),
    ("status", {"status": 529}, 529),
    ("status", {"status": 429, "retry_after": 3}, 429),
    ("garbage", {}, 502),
    ("empty", {}, 502),
    ("stall", {"delay": 3}, 524),
]


# On a stream the fake sends a good chunk before its garbage: a mid-stream failure, which
# can no longer fall back (test_faults covers it).
CASES = [
    (*case, stream) for case in RETRYABLE for stream in (False, True) if not (stream and case[0] == "garbage")
]


@pytest.mark.parametrize(
    ("behavior", "params", "attempt_status", "stream"),
    CASES,
    ids=[f"{c[0]}{c[2]}-{'stream' if c[3] else 'whole'}" for c in CASES],
)
def test_a_failing_primary_falls_back_to_the_secondary(
    gateway, secret, primary, secondary, behavior, params, attempt_status, stream
):
    primary.set_behavior(behavior, times=1, **params)
    response = ask(gateway, secret, stream=stream)
    assert response.status_code == 200, response.text
    assert secondary.stats()["requests"] == 1
    data = record(gateway, secret, generation_id(response))
    assert data.provider_name == "Secondary" and data.model == "acme/ha"
    attempts = [(a.status, a.provider_name) for a in data.provider_responses]
    assert attempts == [(attempt_status, "Primary"), (200, "Secondary")]
    assert all(a.latency is not None for a in data.provider_responses)


def test_an_unreachable_primary_falls_back(gateway, secret, secondary):
    response = ask(gateway, secret, model="acme/dead-first")
    assert response.status_code == 200
    data = record(gateway, secret, generation_id(response))
    assert [(a.status, a.provider_name) for a in data.provider_responses] == [
        (502, "Dead"),
        (200, "Secondary"),
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_a_bad_request_is_not_retried_elsewhere(gateway, secret, primary, secondary, stream):
    primary.set_behavior("status", times=1, status=400, message="context too long")
    response = ask(gateway, secret, stream=stream)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["metadata"]["provider_name"] == "Primary"
    assert "context too long" in str(error["metadata"]["raw"])
    assert secondary.stats()["requests"] == 0


def test_when_all_fail_the_last_failure_decides(gateway, secret, primary, secondary):
    primary.set_behavior("status", times=1, status=500)
    secondary.set_behavior("status", times=1, status=529)
    response = ask(gateway, secret)
    assert response.status_code == 529
    assert response.json()["error"]["metadata"]["provider_name"] == "Secondary"


def test_when_all_are_rate_limited_the_shortest_wait_is_sent(gateway, secret, primary, secondary):
    primary.set_behavior("status", times=1, status=429, retry_after=7)
    secondary.set_behavior("status", times=1, status=429, retry_after=3)
    response = ask(gateway, secret)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"


def test_fallback_models_from_the_request(gateway, secret, primary, secondary):
    primary.set_behavior("status", times=1, status=503)
    response = ask(gateway, secret, model=None, models=["acme/solo", "acme/backup"])
    assert response.status_code == 200
    assert response.json()["model"] == "acme/backup"
    data = record(gateway, secret, response.json()["id"])
    assert data.model == "acme/backup" and data.provider_name == "Secondary"
    # Charged at the model that served it.
    usage = response.json()["usage"]
    expected = (usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 1.20) / 1e6
    assert data.total_cost == pytest.approx(expected, rel=1e-9)


def test_provider_order_and_allow_fallbacks(gateway, secret, primary, secondary):
    response = ask(gateway, secret, provider={"order": ["Secondary"]})
    assert response.status_code == 200 and response.json()["provider"] == "Secondary"
    assert primary.stats()["requests"] == 0
    primary.set_behavior("status", times=1, status=500)
    refused = ask(gateway, secret, provider={"order": ["primary"], "allow_fallbacks": False})
    assert refused.status_code == 502
    assert secondary.stats()["requests"] == 1  # only the first request


def test_official_openai_client_sees_fallback_answers_and_errors(gateway, secret, primary):
    client = openai.OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0)
    primary.set_behavior("status", times=1, status=500)
    assert client.chat.completions.create(model="acme/ha", messages=MESSAGES).choices[0].message.content
    primary.set_behavior("status", times=1, status=500)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="acme/solo", messages=MESSAGES)
    assert caught.value.status_code == 502


def until_served_by(provider: str, ask_once: Callable[[], httpx.Response], within: float) -> list[str]:
    """Ask until ``provider`` answers; the providers that answered, in order. Fails at the deadline."""
    deadline = time.monotonic() + within
    providers: list[str] = []
    while not providers or providers[-1] != provider:
        assert time.monotonic() < deadline, f"{provider} never answered within {within} s: {providers}"
        if providers:
            time.sleep(0.02)  # a polling pace, so as not to flood the ledger; the deadline bounds it
        response = ask_once()
        assert response.status_code == 200, response.text
        providers.append(response.json()["provider"])
    return providers


def test_a_primary_that_keeps_failing_is_skipped_then_probed(database, secret, primary, secondary):
    # The cool-down must outlast the ten requests below, however slow the machine (at 0.5 s a
    # loaded CI host let the circuit half-open and probe the primary a fourth time).
    routing = {"breaker_failures": 3, "breaker_cooldown": 3.0}
    with GatewayServer.build(**settings(database, primary, secondary) | {"routing": routing}) as gateway:
        primary.set_behavior("status", status=500)  # until reset
        for _ in range(10):
            assert ask(gateway, secret).status_code == 200
        assert primary.stats()["requests"] == 3  # the circuit opened after three
        assert secondary.stats()["requests"] == 10
        admin = create_key(database, f"admin-{time.monotonic_ns()}", management=True)
        page = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {admin}"}).text
        assert 'genledger_circuit_open{endpoint="primary/acme/ha"} 1.0' in page
        # Circuits are per endpoint (provider and upstream model). A model the primary
        # alone serves fails like its upstream until its own circuit opens, then fast.
        assert [ask(gateway, secret, model="acme/solo").status_code for _ in range(3)] == [502] * 3
        assert primary.stats()["requests"] == 6
        # Fast: refused without calling the upstream at all.
        fast = ask(gateway, secret, model="acme/solo")
        assert primary.stats()["requests"] == 6
        assert fast.status_code == 502 and "failing" in fast.json()["error"]["message"]
        assert int(fast.headers["Retry-After"]) >= 1
        # The primary recovers. Until the cool-down ends the secondary answers and the primary
        # sees nothing; then exactly one request probes it, succeeds and closes the circuit.
        primary.reset()
        providers = until_served_by(
            "Primary", lambda: ask(gateway, secret), within=5 + routing["breaker_cooldown"]
        )
        assert set(providers[:-1]) <= {"Secondary"}
        assert primary.stats()["requests"] == 1
        assert ask(gateway, secret).json()["provider"] == "Primary"
        assert primary.stats()["requests"] == 2


def test_the_total_deadline_bounds_all_attempts(database, secret, primary, secondary):
    with GatewayServer.build(
        **settings(database, primary, secondary) | {"routing": {"total_timeout": 0.4}}
    ) as gw:
        primary.set_behavior("stall", times=1, delay=3)
        started = time.perf_counter()
        response = ask(gw, secret)
        elapsed = time.perf_counter() - started
        assert response.status_code == 524
        # The total deadline (0.4 s) struck, not the primary's own 1 s timeout.
        assert "total timeout" in response.json()["error"]["message"]
        assert elapsed < 2
        # The gateway hung up on the stalled call, which the fake sees while it still stalls.
        primary.wait_until(lambda s: s["cancelled_requests"] == 1, within=2)
    assert secondary.stats()["requests"] == 0


def test_cancelled_streams_leak_no_upstream_connection_or_task(gateway, secret, primary):
    primary.set_behavior("stall_mid_stream", delay=30, chunks=2)
    for _ in range(5):
        with (
            httpx.Client(timeout=10) as http,
            http.stream(
                "POST",
                gateway.base_url + "/chat/completions",
                json={"model": "acme/solo", "messages": MESSAGES, "stream": True},
                headers={"Authorization": f"Bearer {secret}"},
            ) as response,
        ):
            assert response.status_code == 200
            next(response.iter_lines())
    stats = primary.wait_until(lambda s: s["cancelled_streams"] == 5 and s["open_streams"] == 0)
    assert stats["open_streams"] == 0
    services = gateway.services
    deadline = time.monotonic() + 5
    while services._background and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not services._background, "records of cancelled streams still pending"
