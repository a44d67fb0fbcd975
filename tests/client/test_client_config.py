"""Construction, environment fallbacks, headers, timeouts and closing, for both clients."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from client_kit import API_KEY, BASE_URL, GENERATION_ID, Harness, ok, scripted

from genledger.client import AsyncClient, Client, MissingAPIKeyError, __version__
from genledger.client._types import DEFAULT_BASE_URL, DEFAULT_TIMEOUT

GET = "generations.get_generation"
CLIENTS = [Client, AsyncClient]


@pytest.mark.parametrize("client_class", CLIENTS)
@pytest.mark.parametrize("api_key", [None, ""])
def test_missing_api_key_fails_at_construction(client_class: Any, api_key: str | None) -> None:
    with pytest.raises(MissingAPIKeyError, match="GENLEDGER_API_KEY"):
        client_class(api_key=api_key)


@pytest.mark.parametrize("client_class", CLIENTS)
def test_empty_env_api_key_counts_as_missing(client_class: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENLEDGER_API_KEY", "")
    with pytest.raises(MissingAPIKeyError):
        client_class()


async def test_api_key_and_base_url_fall_back_to_the_environment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, generation_data: dict[str, Any]
) -> None:
    monkeypatch.setenv("GENLEDGER_API_KEY", "sk-from-env")
    monkeypatch.setenv("GENLEDGER_BASE_URL", "https://gateway.example/api/v1/")
    client = harness.client(scripted(ok(generation_data)), api_key=None, base_url=None)

    await harness.call(client, GET, id=GENERATION_ID)

    (request,) = harness.requests
    assert request.headers["Authorization"] == "Bearer sk-from-env"
    assert str(request.url) == f"https://gateway.example/api/v1/generation?id={GENERATION_ID}"


async def test_arguments_beat_the_environment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, generation_data: dict[str, Any]
) -> None:
    monkeypatch.setenv("GENLEDGER_API_KEY", "sk-from-env")
    monkeypatch.setenv("GENLEDGER_BASE_URL", "https://elsewhere.example/api/v1")
    client = harness.client(scripted(ok(generation_data)), api_key="sk-arg", base_url="http://arg.example/v9")
    await harness.call(client, GET, id=GENERATION_ID)
    assert harness.requests[0].headers["Authorization"] == "Bearer sk-arg"
    assert harness.requests[0].url.host == "arg.example"
    assert harness.requests[0].url.path == "/v9/generation"


async def test_default_base_url(harness: Harness, generation_data: dict[str, Any]) -> None:
    assert DEFAULT_BASE_URL == "http://127.0.0.1:8080/api/v1"
    client = harness.client(scripted(ok(generation_data)), base_url=None)
    await harness.call(client, GET, id=GENERATION_ID)
    assert str(harness.requests[0].url).startswith("http://127.0.0.1:8080/api/v1/generation?")


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1/generation"),
        ("https://openrouter.ai/api/v1/", "https://openrouter.ai/api/v1/generation"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/generation"),
        (httpx.URL("http://h/a/b"), "http://h/a/b/generation"),
    ],
)
async def test_paths_join_under_the_base_url(
    harness: Harness, generation_data: dict[str, Any], base_url: Any, expected: str
) -> None:
    client = harness.client(scripted(ok(generation_data)), base_url=base_url)
    await harness.call(client, GET, id=GENERATION_ID)
    assert str(harness.requests[0].url.copy_with(query=None)) == expected


async def test_headers_sent_on_every_request(harness: Harness, generation_data: dict[str, Any]) -> None:
    client = harness.client(scripted(ok(generation_data)))
    await harness.call(client, GET, id=GENERATION_ID)
    headers = harness.requests[0].headers
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["User-Agent"] == f"genledger-python/{__version__}"
    assert re.fullmatch(r"genledger-python/\S+", headers["User-Agent"])
    assert headers["Accept"] == "application/json"
    assert uuid.UUID(headers["X-Request-ID"]).version == 4


async def test_default_headers_are_added_but_cannot_replace_auth_or_request_id(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    client = harness.client(
        scripted(ok(generation_data)),
        default_headers={
            "X-Title": "my app",
            "user-agent": "custom/1.0",
            "X-Request-ID": "fixed",
            "Authorization": "Bearer other",
        },
    )
    await harness.call(client, GET, id=GENERATION_ID)
    headers = harness.requests[0].headers
    assert headers["X-Title"] == "my app"
    assert headers.get_list("User-Agent") == ["custom/1.0"]
    assert headers.get_list("Authorization") == [f"Bearer {API_KEY}"]
    assert headers["X-Request-ID"] != "fixed"
    assert headers.get_list("X-Request-ID") == [headers["X-Request-ID"]]


async def test_timeout_defaults_and_per_call_override(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    client = harness.client(scripted(ok(generation_data)))
    await harness.call(client, GET, id=GENERATION_ID)
    await harness.call(client, GET, id=GENERATION_ID, timeout=1.5)
    await harness.call(client, GET, id=GENERATION_ID, timeout=httpx.Timeout(3.0, connect=1.0))
    await harness.call(client, GET, id=GENERATION_ID, timeout=None)
    timeouts = [request.extensions["timeout"] for request in harness.requests]
    # The injected http_client's timeout (httpx's 5 s default) is the client default.
    assert timeouts[0] == httpx.Timeout(5.0).as_dict()
    assert timeouts[1] == httpx.Timeout(1.5).as_dict()
    assert timeouts[2] == httpx.Timeout(3.0, connect=1.0).as_dict()
    assert timeouts[3] == httpx.Timeout(None).as_dict()


async def test_client_timeout_applies_to_every_call(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    client = harness.client(scripted(ok(generation_data)), timeout=7.0)
    assert client.timeout == 7.0
    await harness.call(client, GET, id=GENERATION_ID)
    assert harness.requests[0].extensions["timeout"] == httpx.Timeout(7.0).as_dict()


@pytest.mark.parametrize("client_class", CLIENTS)
def test_own_http_client_uses_the_default_timeout(client_class: Any) -> None:
    client = client_class(api_key=API_KEY)
    assert client.timeout == DEFAULT_TIMEOUT
    assert client.max_retries == 2
    assert client.base_url == httpx.URL(DEFAULT_BASE_URL + "/")


def test_sync_context_manager_closes_what_it_opened() -> None:
    with Client(api_key=API_KEY) as client:
        assert not client.is_closed
    assert client.is_closed

    injected = httpx.Client()
    with Client(api_key=API_KEY, http_client=injected) as client:
        pass
    assert not injected.is_closed
    injected.close()


async def test_async_context_manager_closes_what_it_opened() -> None:
    async with AsyncClient(api_key=API_KEY) as client:
        assert not client.is_closed
    assert client.is_closed

    injected = httpx.AsyncClient()
    async with AsyncClient(api_key=API_KEY, http_client=injected) as client:
        pass
    assert not injected.is_closed
    await injected.aclose()


async def test_injected_http_client_is_used(harness: Harness, generation_data: dict[str, Any]) -> None:
    http = harness.http_client(scripted(ok(generation_data)), headers={"X-Proxy-Auth": "p"})
    client = harness.client(scripted(ok({})), http_client=http)
    await harness.call(client, GET, id=GENERATION_ID)
    assert harness.requests[0].headers["X-Proxy-Auth"] == "p"
    await harness.close(client)
    assert not http.is_closed


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Client("sk-positional")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        AsyncClient("sk-positional")  # type: ignore[call-arg]


def test_base_url_is_exposed_without_leaking_the_key() -> None:
    client = Client(api_key="sk-secret", base_url=BASE_URL)
    assert client.base_url == httpx.URL(BASE_URL + "/")
    assert "sk-secret" not in repr(client)
    client.close()
