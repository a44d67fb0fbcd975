"""genledger.client against a real gateway: the generation it records, and its errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import openai
import pytest

from genledger.client import (
    AsyncClient,
    BadRequestResponseError,
    Client,
    ForbiddenResponseError,
    NotFoundResponseError,
    UnauthorizedResponseError,
)
from tests.e2e.conftest import FAKE_PROVIDER, MODEL, Keys
from tests.gateway import GatewayServer


def complete(gateway: GatewayServer, key: str, **kwargs) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello client"}], **kwargs
    )


def test_sync_client_fetches_what_the_gateway_recorded(gateway: GatewayServer, keys: Keys):
    completion = complete(gateway, keys.alice, max_tokens=4)
    with Client(api_key=keys.alice, base_url=gateway.base_url) as client:
        record = client.generations.get_generation(id=completion.id)
        assert client.generations.wait(id=completion.id, timeout=1).id == completion.id
    assert record.id == completion.id
    assert record.tokens_completion == 4
    assert record.total_cost == completion.usage.model_extra["cost"]
    assert record.provider_name == FAKE_PROVIDER
    assert record.streamed is False


async def test_async_client_fetches_too(gateway: GatewayServer, keys: Keys):
    completion = complete(gateway, keys.alice)
    async with AsyncClient(api_key=keys.alice, base_url=gateway.base_url) as client:
        record = await client.generations.get_generation(id=completion.id)
    assert record.id == completion.id and record.model == MODEL


def test_client_errors_from_the_gateway(gateway: GatewayServer, keys: Keys):
    completion = complete(gateway, keys.alice)
    with Client(api_key=keys.bob, base_url=gateway.base_url, max_retries=0) as client:
        with pytest.raises(NotFoundResponseError) as caught:
            client.generations.get_generation(id=completion.id)
        assert caught.value.status_code == 404 and caught.value.error.code == 404
        with pytest.raises(BadRequestResponseError):
            client.generations.get_generation(id="x" * 300)
    with (
        Client(api_key="sk-gl-v1-unknown", base_url=gateway.base_url) as client,
        pytest.raises(UnauthorizedResponseError),
    ):
        client.generations.get_generation(id=completion.id)


def test_wait_gives_up_with_not_found(gateway: GatewayServer, keys: Keys):
    with (
        Client(api_key=keys.alice, base_url=gateway.base_url) as client,
        pytest.raises(NotFoundResponseError),
    ):
        client.generations.wait(id="gen-neverrecorded0000000000", timeout=0.3)


def tagged_generations(gateway: GatewayServer, key: str, count: int) -> tuple[str, list[str]]:
    """``count`` generations sharing fresh metadata; returns the tag and their ids, newest first."""
    run = f"run-{uuid.uuid4().hex[:8]}"
    ids = [complete(gateway, key, metadata={"run": run, "i": str(i)}).id for i in range(count)]
    return run, ids[::-1]


def test_sync_list_walks_the_pages_of_what_the_gateway_recorded(gateway: GatewayServer, keys: Keys):
    since = datetime.now(UTC) - timedelta(minutes=5)
    run, newest_first = tagged_generations(gateway, keys.alice, 5)
    with Client(api_key=keys.alice, base_url=gateway.base_url) as client:
        page = client.generations.list(metadata={"run": run}, created_after=since, limit=2)
        pages = list(page.iter_pages())
        walked = list(page)
        assert list(client.generations.list(metadata={"run": run, "i": "3"})) == [walked[1]]
        assert list(client.generations.list(metadata={"run": run}, model="no/such-model")) == []
        # A float min_cost, whatever arithmetic left in it: sent at the server's twelve decimals.
        assert list(client.generations.list(metadata={"run": run}, min_cost=0.1 + 0.2)) == []
        assert len(list(client.generations.list(metadata={"run": run}, min_cost=1 / 3 * 1e-12))) == 5
        with pytest.raises(BadRequestResponseError) as caught:
            client.generations.list(limit=0)
        assert caught.value.error.metadata == {"param": "limit"}
    assert [len(p.data) for p in pages] == [2, 2, 1]
    assert [p.next_cursor is None for p in pages] == [False, False, True]
    assert [g.id for g in walked] == newest_first
    assert [g.metadata for g in walked] == [{"run": run, "i": str(i)} for i in (4, 3, 2, 1, 0)]
    assert all(g.model == MODEL and g.provider_name == FAKE_PROVIDER for g in walked)


async def test_async_list_walks_the_pages_too(gateway: GatewayServer, keys: Keys):
    run, newest_first = tagged_generations(gateway, keys.alice, 3)
    async with AsyncClient(api_key=keys.alice, base_url=gateway.base_url) as client:
        first = await client.generations.list(metadata={"run": run}, limit=2)
        walked = [g.id async for g in client.generations.list(metadata={"run": run}, limit=2)]
        with pytest.raises(ForbiddenResponseError):
            await client.generations.list(api_key_hash="0" * 64)
    assert [g.id for g in first.data] == newest_first[:2] and first.has_next_page()
    assert walked == newest_first
