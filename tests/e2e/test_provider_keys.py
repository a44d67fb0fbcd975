"""Provider keys reach their upstreams, in each provider's header, and nothing else does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeAnthropicInThread, FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key

OPENAI_KEY_ENV = "GENLEDGER_TEST_OPENAI_KEY"
OPENAI_SECRET = "sk-openai-test-secret"
ANTHROPIC_KEY_ENV = "GENLEDGER_TEST_ANTHROPIC_KEY"
ANTHROPIC_SECRET = "sk-ant-test-secret"
PRICES = {"prompt_price": "1", "completion_price": "2"}
MODELS = {"openai": "keys/openai", "anthropic": "keys/anthropic", "keyless": "keys/keyless"}


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
    settings: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path_factory.mktemp('keys')}/genledger.db",
        "providers": {
            "openai": {"kind": "openai", "base_url": openai_fake.api_url, "api_key_env": OPENAI_KEY_ENV},
            "keyless": {"kind": "openai", "base_url": openai_fake.api_url},
            "claude": {"kind": "anthropic", "base_url": anthropic_fake.url, "api_key_env": ANTHROPIC_KEY_ENV},
        },
        "models": {
            MODELS["openai"]: {"provider": "openai", "upstream_model": "gpt-4o", **PRICES},
            MODELS["keyless"]: {"provider": "keyless", "upstream_model": "gpt-4o", **PRICES},
            MODELS["anthropic"]: {"provider": "claude", "upstream_model": "claude-sonnet-4-5", **PRICES},
        },
    }
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv(OPENAI_KEY_ENV, OPENAI_SECRET)
        monkeypatch.setenv(ANTHROPIC_KEY_ENV, ANTHROPIC_SECRET)
        server = GatewayServer.build(**settings)
    # Read once when the settings were built: the variables are gone again while it serves.
    with server:
        yield server


@pytest.fixture(scope="module")
def key(gateway: GatewayServer) -> str:
    return create_key(gateway.settings.database_url, "keys-caller")


def ask(gateway: GatewayServer, key: str, model: str, *, stream: bool) -> None:
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_openai_compatible_upstream_gets_its_key_as_a_bearer_token(gateway, key, openai_fake, stream):
    openai_fake.reset()
    ask(gateway, key, MODELS["openai"], stream=stream)
    headers = openai_fake.stats()["last_request"]["headers"]
    assert headers["authorization"] == f"Bearer {OPENAI_SECRET}"
    assert key not in str(headers)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_anthropic_gets_its_key_in_x_api_key_and_no_authorization(gateway, key, anthropic_fake, stream):
    anthropic_fake.reset()
    ask(gateway, key, MODELS["anthropic"], stream=stream)
    headers = anthropic_fake.stats()["last_request"]["headers"]
    assert headers["x-api-key"] == ANTHROPIC_SECRET
    assert "authorization" not in headers
    assert key not in str(headers)


def test_a_provider_without_a_key_gets_no_authorization_and_never_the_callers(gateway, key, openai_fake):
    openai_fake.reset()
    ask(gateway, key, MODELS["keyless"], stream=False)
    headers = openai_fake.stats()["last_request"]["headers"]
    assert "authorization" not in headers
    assert key not in str(headers)
