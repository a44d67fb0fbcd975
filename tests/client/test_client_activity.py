"""``activity.get``: the typed rows of ``GET /activity`` and the query it sends, on both clients."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pydantic
import pytest
from client_kit import Harness, Reply, fail, scripted

from genledger.client import (
    ActivityItem,
    BadRequestResponseError,
    ForbiddenResponseError,
    InternalServerResponseError,
)

GET = "activity.get"
HASH = "cd" * 32


def row(**overrides: Any) -> dict[str, Any]:
    """One activity row with OpenRouter's keys."""
    return {
        "date": "2026-03-01",
        "model": "openai/gpt-4.1",
        "model_permaslug": "openai/gpt-4.1-2025-04-14",
        "endpoint_id": "550e8400-e29b-41d4-a716-446655440000",
        "provider_name": "OpenAI",
        "usage": 0.015,
        "byok_usage_inference": 0.012,
        "requests": 5,
        "prompt_tokens": 50,
        "completion_tokens": 125,
        "reasoning_tokens": 25,
        **overrides,
    }


def answer(*rows: dict[str, Any]) -> Reply:
    return Reply(200, json={"data": list(rows)})


async def test_rows_are_typed_with_openrouters_keys(harness: Harness) -> None:
    client = harness.client(scripted(answer(row(), row(model="acme/fast", cached_tokens=7))))

    items = await harness.call(client, GET)

    assert isinstance(items, list) and all(isinstance(item, ActivityItem) for item in items)
    first, second = items
    assert first.model_dump() == {
        **row(),
        "cached_tokens": None,
        "hour": None,
        "api_key_hash": None,
        "external_user": None,
        "session_id": None,
        "workspace_id": None,
    }
    assert first.requests == 5 and isinstance(first.requests, int)
    assert first.usage == pytest.approx(0.015) and first.byok_usage_inference == pytest.approx(0.012)
    assert (second.model, second.cached_tokens) == ("acme/fast", 7)
    assert first.metadata_groups == {}
    (request,) = harness.requests
    assert (request.method, request.url.path, request.url.query) == ("GET", "/api/v1/activity", b"")


def sums(**overrides: Any) -> dict[str, Any]:
    """A grouped row's totals: a grouped row has its group's keys and these, nothing else."""
    return {
        "usage": 0.015,
        "byok_usage_inference": 0.0,
        "requests": 5,
        "prompt_tokens": 50,
        "completion_tokens": 125,
        "reasoning_tokens": 25,
        "cached_tokens": 0,
        **overrides,
    }


async def test_grouping_keys_are_fields_and_metadata_columns_are_grouped(harness: Harness) -> None:
    grouped = sums(
        hour="2026-03-01T14:00:00Z",
        api_key_hash=HASH,
        external_user="user-42",
        session_id="s-1",
        **{"metadata.team": "search", "metadata.env": None},
        brand_new_total=3,
    )
    client = harness.client(scripted(answer(grouped)))

    (item,) = await harness.call(
        client, GET, group_by=["hour", "key", "user", "session", "metadata.team", "metadata.env"]
    )

    assert (item.hour, item.api_key_hash, item.external_user, item.session_id) == (
        "2026-03-01T14:00:00Z",
        HASH,
        "user-42",
        "s-1",
    )
    assert (item.date, item.model, item.provider_name, item.endpoint_id) == (None, None, None, None)
    assert item.metadata_groups == {"team": "search", "env": None}
    assert item.model_extra == {"metadata.team": "search", "metadata.env": None, "brand_new_total": 3}
    with pytest.raises(pydantic.ValidationError):
        item.requests = 6


@pytest.mark.parametrize(
    "keys",
    [
        {"date": "2026-03-01"},
        {"model": "acme/fast"},
        {"provider_name": "Acme"},
        {"date": "2026-03-01", "model": None, "provider_name": "Acme"},
        {"workspace_id": "default"},
    ],
)
async def test_a_row_carries_only_its_groups_keys(harness: Harness, keys: dict[str, Any]) -> None:
    client = harness.client(scripted(answer(sums(**keys))))
    (item,) = await harness.call(client, GET, group_by="day")
    assert {name: getattr(item, name) for name in keys} == keys
    assert item.requests == 5


async def test_nullable_endpoint_keys_and_an_empty_answer(harness: Harness) -> None:
    nulls = row(model_permaslug=None, endpoint_id=None, provider_name=None)
    client = harness.client(scripted(answer(nulls), answer()))
    (item,) = await harness.call(client, GET)
    assert (item.model_permaslug, item.endpoint_id, item.provider_name) == (None, None, None)
    assert await harness.call(client, GET) == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"date": date(2026, 3, 1)}, "date=2026-03-01"),
        ({"date": datetime(2026, 3, 1, 23, 59, tzinfo=UTC)}, "date=2026-03-01"),
        ({"date": "2026-03-01"}, "date=2026-03-01"),
        ({"api_key_hash": HASH}, f"api_key_hash={HASH}"),
        ({"group_by": "hour"}, "group_by=hour"),
        ({"group_by": ["hour", "metadata.team"]}, "group_by=hour%2Cmetadata.team"),
        ({"group_by": ("user",)}, "group_by=user"),
        (
            {"date": "2026-03-01", "api_key_hash": HASH, "group_by": ["session"]},
            f"date=2026-03-01&api_key_hash={HASH}&group_by=session",
        ),
    ],
)
async def test_query_encoding(harness: Harness, kwargs: dict[str, Any], expected: str) -> None:
    client = harness.client(scripted(answer()))
    await harness.call(client, GET, **kwargs)
    assert harness.requests[0].url.query.decode() == expected


async def test_errors_are_mapped_by_status(harness: Harness) -> None:
    client = harness.client(
        scripted(
            fail(400, "'group_by' cannot group by colour", metadata={"param": "group_by"}),
            fail(403, "Only management keys may read other keys' activity"),
        )
    )
    with pytest.raises(BadRequestResponseError) as caught:
        await harness.call(client, GET, group_by="colour")
    assert caught.value.error is not None and caught.value.error.metadata == {"param": "group_by"}
    with pytest.raises(ForbiddenResponseError):
        await harness.call(client, GET, api_key_hash=HASH)
    assert len(harness.requests) == 2


async def test_retries_are_honoured(harness: Harness) -> None:
    client = harness.client(scripted(fail(429, headers={"retry-after-ms": "250"}), answer(row())))
    (item,) = await harness.call(client, GET, date="2026-03-01")
    assert item.date == "2026-03-01"
    assert harness.sleeps == [0.25]
    assert [r.url.query for r in harness.requests] == [b"date=2026-03-01"] * 2
    assert harness.requests[0].headers["X-Request-ID"] == harness.requests[1].headers["X-Request-ID"]


async def test_max_retries_per_call(harness: Harness) -> None:
    client = harness.client(scripted(fail(500), answer()))
    with pytest.raises(InternalServerResponseError):
        await harness.call(client, GET, max_retries=0)
    assert len(harness.requests) == 1
