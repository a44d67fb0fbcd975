"""stream_idle_timeout: the gap between a stream's chunks, apart from the wait for the first."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openrouter import OpenRouter
from openrouter.utils import BackoffStrategy, RetryConfig

from tests.fakes import FakeAnthropicInThread, FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)
KEY_ENV = "GENLEDGER_TEST_IDLE_ANTHROPIC_KEY"
IDLE_S = 0.3  # stream_idle_timeout
TIMEOUT_S = 5.0  # timeout: for the response and the first chunk
PRICES = {"prompt_price": "1", "completion_price": "2"}
OPENAI_MODEL, ANTHROPIC_MODEL = "idle/openai", "idle/anthropic"


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAIInThread]:
    with FakeOpenAIInThread() as fake:
        yield fake


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[FakeAnthropicInThread]:
    with FakeAnthropicInThread() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(openai_fake, anthropic_fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    timeouts = {"timeout": TIMEOUT_S, "stream_idle_timeout": IDLE_S}
    settings: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path_factory.mktemp('idle')}/genledger.db",
        "routing": {"breaker_failures": 10_000},
        "providers": {
            "openai": {"kind": "openai", "base_url": openai_fake.api_url, "display_name": "Idle", **timeouts},
            "claude": {
                "kind": "anthropic",
                "base_url": anthropic_fake.url,
                "api_key_env": KEY_ENV,
                **timeouts,
            },
        },
        "models": {
            OPENAI_MODEL: {"provider": "openai", "upstream_model": "gpt-4o", **PRICES},
            ANTHROPIC_MODEL: {"provider": "claude", "upstream_model": "claude-sonnet-4-5", **PRICES},
        },
    }
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv(KEY_ENV, "sk-ant-idle")
        server = GatewayServer.build(**settings)
    with server:
        yield server


@pytest.fixture(scope="module")
def key(gateway: GatewayServer) -> str:
    return create_key(gateway.settings.database_url, "idle-caller")


@pytest.fixture
def fakes(openai_fake, anthropic_fake) -> dict[str, Any]:
    openai_fake.reset()
    anthropic_fake.reset()
    return {OPENAI_MODEL: openai_fake, ANTHROPIC_MODEL: anthropic_fake}


def stream(gateway: GatewayServer, key: str, model: str) -> tuple[list[dict[str, Any]], float]:
    started = time.monotonic()
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.text.endswith("data: [DONE]\n\n")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    return events, elapsed


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))


def record(gateway: GatewayServer, key: str, generation_id: str) -> Any:
    with OpenRouter(api_key=key, server_url=gateway.base_url, retry_config=NO_RETRIES) as sdk:
        return sdk.generations.get_generation(id=generation_id).data


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL], ids=["openai", "anthropic"])
def test_a_stall_after_the_first_chunk_ends_the_stream_after_the_idle_timeout(gateway, key, fakes, model):
    fakes[model].set_behavior("stall_mid_stream", times=1, delay=30, chunks=1)
    events, elapsed = stream(gateway, key, model)
    assert IDLE_S <= elapsed < TIMEOUT_S  # the idle timeout ended it, not `timeout`
    assert text_of(events) == "tok"
    error_chunk = next(e for e in events if "error" in e)
    assert error_chunk["error"]["code"] == 524
    assert error_chunk["error"]["message"].endswith(f"timed out (no chunk for {IDLE_S:g}s)")
    assert error_chunk["choices"][0]["finish_reason"] == "error"
    generation = record(gateway, key, events[0]["id"])
    assert generation.finish_reason == "error" and generation.streamed is True
    assert generation.provider_responses[0].status == 524
    # The gateway hung up on the stalled upstream.
    fakes[model].wait_until(lambda s: s["open_streams"] == 0 and s["cancelled_streams"] == 1)


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL], ids=["openai", "anthropic"])
@pytest.mark.parametrize(
    "behavior",
    [
        {"behavior": "stall", "delay": 1.0},  # no headers for a second
        {"behavior": "ok", "head_delay": 1.0},  # headers at once, then nothing for a second
    ],
    ids=["before-headers", "before-first-chunk"],
)
def test_a_first_chunk_may_take_longer_than_the_idle_timeout(gateway, key, fakes, model, behavior):
    fakes[model].set_behavior(times=1, **behavior)
    events, elapsed = stream(gateway, key, model)
    assert elapsed >= 1.0
    assert not any("error" in e for e in events)
    assert text_of(events) == " ".join(["tok"] * 8)
    assert record(gateway, key, events[0]["id"]).finish_reason == "stop"


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL], ids=["openai", "anthropic"])
def test_a_slow_steady_stream_outlasts_the_idle_timeout(gateway, key, fakes, model):
    # Twelve-odd events 0.1 s apart: the whole stream takes far longer than IDLE_S, no gap does.
    fakes[model].set_behavior("ok", times=1, chunk_delay_ms=100)
    events, elapsed = stream(gateway, key, model)
    assert elapsed > 3 * IDLE_S
    assert not any("error" in e for e in events)
    assert text_of(events) == " ".join(["tok"] * 8)
