"""genledger.client against a real gateway: the generation it records, and its errors."""

from __future__ import annotations

import openai
import pytest

from genledger.client import (
    AsyncClient,
    BadRequestResponseError,
    Client,
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
