"""``key.get`` and ``credits.get``: OpenRouter's shapes, nullable where it allows null."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from client_kit import Harness, fail, ok, scripted

from genledger.client import Credits, KeyInfo, RateLimit, ResponseValidationError, UnauthorizedResponseError


def key_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "label": "sk-gl-v1-abc...xyz",
        "limit": 10.0,
        "limit_remaining": 7.5,
        "limit_reset": "monthly",
        "usage": 2.5,
        "usage_daily": 0.5,
        "usage_weekly": 1.0,
        "usage_monthly": 2.5,
        "is_free_tier": False,
        "rate_limit": {"requests": -1, "interval": "10s", "note": "legacy"},
    }
    data.update(overrides)
    return data


async def test_key_get(harness: Harness) -> None:
    client = harness.client(scripted(ok(key_data())))

    info = await harness.call(client, "key.get")

    assert isinstance(info, KeyInfo)
    assert (info.label, info.limit, info.limit_remaining, info.limit_reset) == (
        "sk-gl-v1-abc...xyz",
        10.0,
        7.5,
        "monthly",
    )
    assert (info.usage, info.usage_daily, info.usage_weekly, info.usage_monthly) == (2.5, 0.5, 1.0, 2.5)
    assert info.is_free_tier is False
    assert info.rate_limit == RateLimit(requests=-1, interval="10s", note="legacy")
    (request,) = harness.requests
    assert request.method == "GET"
    assert request.url.path == "/api/v1/key"
    assert request.url.query == b""


async def test_key_nullable_fields_and_absent_legacy_rate_limit(harness: Harness) -> None:
    data = key_data(limit=None, limit_remaining=None, limit_reset=None)
    del data["rate_limit"]
    client = harness.client(scripted(ok(data)))

    info = await harness.call(client, "key.get")

    assert info.limit is None and info.limit_remaining is None and info.limit_reset is None
    assert info.rate_limit is None


async def test_key_keeps_unknown_keys_and_is_immutable(harness: Harness) -> None:
    client = harness.client(scripted(ok(key_data(is_management_key=False, byok_usage=0.0))))
    info = await harness.call(client, "key.get")
    assert info.model_extra == {"is_management_key": False, "byok_usage": 0.0}
    with pytest.raises(pydantic.ValidationError):
        info.usage = 0.0


async def test_key_malformed(harness: Harness) -> None:
    client = harness.client(scripted(ok(key_data(usage="lots"))))
    with pytest.raises(ResponseValidationError) as caught:
        await harness.call(client, "key.get")
    assert caught.value.field == "data.usage"
    assert "KeyInfo" in str(caught.value)


async def test_credits_get(harness: Harness) -> None:
    client = harness.client(scripted(ok({"total_credits": 25.0, "total_usage": 3.75, "currency": "USD"})))

    credits = await harness.call(client, "credits.get")

    assert isinstance(credits, Credits)
    assert (credits.total_credits, credits.total_usage) == (25.0, 3.75)
    # Not a field of the contract: kept as an unknown key, as every model keeps them.
    assert credits.model_extra == {"currency": "USD"}
    assert harness.requests[0].url.path == "/api/v1/credits"
    with pytest.raises(pydantic.ValidationError):
        credits.total_usage = 0.0


async def test_credits_malformed(harness: Harness) -> None:
    client = harness.client(scripted(ok({"total_credits": 25.0})))
    with pytest.raises(ResponseValidationError) as caught:
        await harness.call(client, "credits.get")
    assert caught.value.field == "data.total_usage"


@pytest.mark.parametrize("method", ["key.get", "credits.get"])
async def test_per_call_overrides_and_errors(harness: Harness, method: str) -> None:
    client = harness.client(scripted(fail(500), fail(401)))
    with pytest.raises(UnauthorizedResponseError):
        await harness.call(client, method, timeout=2.0, max_retries=1)
    assert len(harness.requests) == 2
    assert all(request.extensions["timeout"]["read"] == 2.0 for request in harness.requests)
