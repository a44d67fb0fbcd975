"""Fixtures for end-to-end tests: a fake upstream, a real gateway, keys, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes import FakeOpenAIInThread, unused_port
from tests.gateway import GatewayServer, create_key
from tests.services import postgres_database

FAKE_PROVIDER = "FakeAI"
MODEL = "acme/fast-chat"
PRICES = {"prompt_price": "0.15", "completion_price": "0.60", "cached_prompt_price": "0.075"}
UPSTREAM_TIMEOUT_S = 1.0
MAX_BODY_BYTES = 64 * 1024


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('ledger')}/genledger.db"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIInThread]:
    with FakeOpenAIInThread() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_upstream(request: pytest.FixtureRequest) -> None:
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").reset()


def gateway_settings(database_url: str, upstream_url: str, **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "database_url": database_url,
        "max_body_bytes": MAX_BODY_BYTES,
        # Fault tests fail one endpoint on purpose, many times: keep its circuit closed.
        "routing": {"breaker_failures": 10_000},
        "providers": {
            "fake": {
                "kind": "openai",
                "base_url": upstream_url,
                "display_name": FAKE_PROVIDER,
                "timeout": UPSTREAM_TIMEOUT_S,
            },
            "nowhere": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{unused_port()}/v1",
                "display_name": "Nowhere",
            },
            "demo": {"kind": "demo"},
        },
        "models": {
            MODEL: {"provider": "fake", "upstream_model": "fast", **PRICES},
            "acme/unreachable": {"provider": "nowhere", **PRICES},
            "genledger/demo": {"provider": "demo", **PRICES},
        },
    }
    settings.update(extra)
    return settings


@dataclass
class Keys:
    alice: str
    bob: str
    disabled: str


@pytest.fixture(scope="module")
def keys(database_url: str) -> Keys:
    from tests.gateway import run_with_ledger

    keys = Keys(
        alice=create_key(database_url, "alice"),
        bob=create_key(database_url, "bob"),
        disabled=create_key(database_url, "disabled"),
    )
    run_with_ledger(database_url, lambda ledger: ledger.keys.set_disabled("disabled"))
    return keys


@pytest.fixture(scope="module")
def gateway(database_url: str, upstream: FakeOpenAIInThread, keys: Keys) -> Iterator[GatewayServer]:
    with GatewayServer.build(**gateway_settings(database_url, upstream.api_url)) as server:
        yield server
