"""``generations.list``: the query it sends, the pages it walks, its errors and retries, on both clients."""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from client_kit import Harness, Reply, fail, sample_generation, scripted

from genledger.client import (
    APIError,
    AsyncPage,
    AsyncPaginator,
    BadRequestResponseError,
    ForbiddenResponseError,
    Generation,
    ResponseValidationError,
    SyncPage,
)
from genledger.client._query import generation_list_params

LIST = "generations.list"
HASH = "ab" * 32


def listed(*ids: str, next_cursor: str | None = None) -> Reply:
    """A 200 with one page of generations."""
    return Reply(200, json={"data": [sample_generation(id=i) for i in ids], "next_cursor": next_cursor})


def paged(pages: dict[str | None, Reply]) -> Any:
    """A handler answering each ``cursor`` (``None``: no cursor) with its page."""

    def handle(request: httpx.Request) -> httpx.Response:
        return pages[request.url.params.get("cursor")].build(request)

    return handle


async def walk(page: SyncPage[Generation] | AsyncPage[Generation]) -> list[str]:
    """The ids of every item from ``page`` on, across pages."""
    if isinstance(page, AsyncPage):
        return [generation.id async for generation in page]
    return [generation.id for generation in page]


def query(request: httpx.Request) -> str:
    return request.url.query.decode()


async def test_every_filter_is_encoded_in_the_api_grammar(harness: Harness) -> None:
    client = harness.client(scripted(listed()))

    await harness.call(
        client,
        LIST,
        created_after=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        created_before="2026-02-01",
        model="openai/gpt-4o",
        provider_name="Open AI",
        finish_reason="stop",
        streamed=True,
        cancelled=False,
        external_user="u&1",
        session_id="s/1",
        metadata={"team": "a b", "env": "prod"},
        api_key_hash=HASH,
        min_cost=Decimal("0.0000001"),
        limit=2,
    )

    (request,) = harness.requests
    assert (request.method, request.url.path) == ("GET", "/api/v1/generations")
    assert query(request) == (
        "created_after=2026-01-02T03%3A04%3A05%2B00%3A00&created_before=2026-02-01"
        "&model=openai%2Fgpt-4o&provider_name=Open+AI&finish_reason=stop&streamed=true&cancelled=false"
        "&external_user=u%261&session_id=s%2F1&metadata%5Bteam%5D=a+b&metadata%5Benv%5D=prod"
        f"&api_key_hash={HASH}&min_cost=0.0000001&limit=2"
    )
    # What the server's parser will read back:
    assert dict(request.url.params) == {
        "created_after": "2026-01-02T03:04:05+00:00",
        "created_before": "2026-02-01",
        "model": "openai/gpt-4o",
        "provider_name": "Open AI",
        "finish_reason": "stop",
        "streamed": "true",
        "cancelled": "false",
        "external_user": "u&1",
        "session_id": "s/1",
        "metadata[team]": "a b",
        "metadata[env]": "prod",
        "api_key_hash": HASH,
        "min_cost": "0.0000001",
        "limit": "2",
    }


async def test_no_filters_send_an_empty_query(harness: Harness) -> None:
    client = harness.client(scripted(listed()))
    await harness.call(client, LIST)
    assert query(harness.requests[0]) == ""


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"min_cost": Decimal("0.50")}, {"min_cost": "0.50"}),
        ({"min_cost": Decimal("1E-7")}, {"min_cost": "0.0000001"}),
        ({"min_cost": 0.1}, {"min_cost": "0.1"}),
        ({"min_cost": 1e-7}, {"min_cost": "0.0000001"}),
        ({"min_cost": 2}, {"min_cost": "2"}),
        # A float carries no more than the server's twelve decimals, whatever arithmetic left.
        ({"min_cost": 0.1 + 0.2}, {"min_cost": "0.3"}),
        ({"min_cost": 1 / 3}, {"min_cost": "0.333333333333"}),
        ({"min_cost": 1e-13}, {"min_cost": "0"}),
        ({"min_cost": 1e20}, {"min_cost": "100000000000000000000"}),
        ({"min_cost": 2.0}, {"min_cost": "2"}),
        ({"min_cost": "0.25"}, {"min_cost": "0.25"}),
        ({"created_after": date(2026, 1, 2)}, {"created_after": "2026-01-02"}),
        ({"created_after": datetime(2026, 1, 2, 3, 4, 5)}, {"created_after": "2026-01-02T03:04:05"}),
        ({"created_before": "2026-01-02T00:00:00Z"}, {"created_before": "2026-01-02T00:00:00Z"}),
        ({"streamed": False, "cancelled": True}, {"streamed": "false", "cancelled": "true"}),
        ({"metadata": {}}, {}),
    ],
)
def test_value_encodings(filters: dict[str, Any], expected: dict[str, str]) -> None:
    assert params(**filters) == expected


def test_a_bool_is_not_a_cost() -> None:
    with pytest.raises(TypeError, match="min_cost"):
        params(min_cost=True)


def params(**filters: Any) -> dict[str, str]:
    """``generation_list_params`` with every filter not named left out."""
    names = inspect.signature(generation_list_params).parameters
    return generation_list_params(**{**dict.fromkeys(names), **filters})


async def test_iterating_follows_next_cursor_until_null_once_per_page(harness: Harness) -> None:
    client = harness.client(
        paged(
            {
                None: listed("gen-1", "gen-2", next_cursor="c1"),
                "c1": listed("gen-3", "gen-4", next_cursor="c2"),
                "c2": listed("gen-5"),
            }
        )
    )

    page = await harness.call(client, LIST, model="m", limit=2)

    assert isinstance(page, AsyncPage if harness.is_async else SyncPage)
    assert [g.id for g in page.data] == ["gen-1", "gen-2"]
    assert all(isinstance(g, Generation) for g in page.data)
    assert page.next_cursor == "c1" and page.has_next_page()
    assert len(harness.requests) == 1  # the first page only, until iteration needs more
    assert await walk(page) == ["gen-1", "gen-2", "gen-3", "gen-4", "gen-5"]
    assert [query(r) for r in harness.requests] == [
        "model=m&limit=2",
        "model=m&limit=2&cursor=c1",
        "model=m&limit=2&cursor=c2",
    ]
    # Every page of one walk is its own call: each gets its own request id.
    assert len({r.headers["X-Request-ID"] for r in harness.requests}) == 3


async def test_pages_are_requested_only_when_reached(harness: Harness) -> None:
    client = harness.client(
        paged({None: listed("gen-1", next_cursor="c1"), "c1": listed("gen-2", next_cursor="c2")})
    )
    page = await harness.call(client, LIST)
    if isinstance(page, AsyncPage):
        items = page.__aiter__()
        assert (await anext(items)).id == "gen-1"
        assert len(harness.requests) == 1
        assert (await anext(items)).id == "gen-2"
        await items.aclose()
    else:
        items = iter(page)
        assert next(items).id == "gen-1"
        assert len(harness.requests) == 1
        assert next(items).id == "gen-2"
    assert len(harness.requests) == 2  # "c2" never requested


async def test_iter_pages_and_get_next_page(harness: Harness) -> None:
    client = harness.client(
        paged({None: listed("gen-1", next_cursor="c1"), "c1": listed("gen-2", next_cursor=None)})
    )
    page = await harness.call(client, LIST)
    if isinstance(page, AsyncPage):
        pages = [p async for p in page.iter_pages()]
        last = await page.get_next_page()
        with pytest.raises(RuntimeError, match="no next page"):
            await last.get_next_page()
    else:
        pages = list(page.iter_pages())
        last = page.get_next_page()
        with pytest.raises(RuntimeError, match="no next page"):
            last.get_next_page()
    assert [[g.id for g in p.data] for p in pages] == [["gen-1"], ["gen-2"]]
    assert [p.next_cursor for p in pages] == ["c1", None]
    assert pages[0] is page
    assert not last.has_next_page()
    assert repr(last) == f"{type(last).__name__}(items=1, next_cursor=None)"
    assert len(harness.requests) == 3  # get_next_page asks again: pages are not cached


@pytest.mark.parametrize("body", [{"data": [], "next_cursor": None}, {"data": []}])
async def test_an_empty_page_ends_the_walk(harness: Harness, body: dict[str, Any]) -> None:
    client = harness.client(scripted(Reply(200, json=body)))
    page = await harness.call(client, LIST, metadata={"team": "nobody"})
    assert page.data == [] and page.next_cursor is None and not page.has_next_page()
    assert await walk(page) == []
    assert len(harness.requests) == 1


async def test_a_400_names_the_parameter_and_is_not_retried(harness: Harness) -> None:
    client = harness.client(
        scripted(fail(400, "'limit' must be an integer from 1 to 1000", metadata={"param": "limit"}))
    )
    with pytest.raises(BadRequestResponseError, match="'limit' must be") as caught:
        await harness.call(client, LIST, limit=0)
    assert caught.value.status_code == 400
    assert caught.value.error is not None and caught.value.error.metadata == {"param": "limit"}
    assert len(harness.requests) == 1 and harness.sleeps == []


async def test_a_403_for_another_keys_hash(harness: Harness) -> None:
    client = harness.client(scripted(fail(403, "Only management keys may read other keys' generations")))
    with pytest.raises(ForbiddenResponseError, match="management keys"):
        await harness.call(client, LIST, api_key_hash=HASH)
    assert len(harness.requests) == 1


async def test_an_error_on_a_later_page_is_raised_by_the_iteration(harness: Harness) -> None:
    client = harness.client(
        paged({None: listed("gen-1", next_cursor="c1"), "c1": fail(400, "bad", metadata={"param": "cursor"})})
    )
    page = await harness.call(client, LIST)
    with pytest.raises(BadRequestResponseError) as caught:
        await walk(page)
    assert caught.value.error is not None and caught.value.error.metadata == {"param": "cursor"}


async def test_retries_are_honoured_on_every_page(harness: Harness) -> None:
    client = harness.client(
        scripted(
            fail(503, headers={"Retry-After": "2"}),
            listed("gen-1", next_cursor="c1"),
            fail(529),
            listed("gen-2"),
        )
    )
    page = await harness.call(client, LIST, limit=1)
    assert await walk(page) == ["gen-1", "gen-2"]
    assert [query(r) for r in harness.requests] == [
        "limit=1",
        "limit=1",
        "limit=1&cursor=c1",
        "limit=1&cursor=c1",
    ]
    assert harness.sleeps[0] == 2.0 and len(harness.sleeps) == 2
    # A retry repeats its call's request id; the next page is a new call.
    ids = [r.headers["X-Request-ID"] for r in harness.requests]
    assert ids[0] == ids[1] != ids[2] == ids[3]


async def test_per_call_max_retries_applies_to_each_page(harness: Harness) -> None:
    client = harness.client(paged({None: listed("gen-1", next_cursor="c1"), "c1": fail(503)}))
    page = await harness.call(client, LIST, max_retries=0)
    with pytest.raises(APIError) as caught:
        await walk(page)
    assert caught.value.status_code == 503
    assert len(harness.requests) == 2 and harness.sleeps == []


async def test_an_item_that_is_not_a_generation_is_a_validation_error(harness: Harness) -> None:
    broken = sample_generation()
    del broken["model"]
    client = harness.client(scripted(Reply(200, json={"data": [sample_generation(), broken]})))
    with pytest.raises(ResponseValidationError, match="does not match GenerationList") as caught:
        await harness.call(client, LIST)
    assert caught.value.field == "data.1.model"


async def test_a_body_without_data_is_a_validation_error(harness: Harness) -> None:
    client = harness.client(scripted(Reply(200, json={"items": []})))
    with pytest.raises(ResponseValidationError) as caught:
        await harness.call(client, LIST)
    assert caught.value.field == "data"


async def test_async_for_over_the_paginator_walks_every_page() -> None:
    harness = Harness("async")
    client = harness.client(paged({None: listed("gen-1", next_cursor="c1"), "c1": listed("gen-2")}))
    paginator = client.generations.list(limit=1)
    assert isinstance(paginator, AsyncPaginator)
    assert harness.requests == []  # nothing sent before it is awaited or iterated
    assert [g.id async for g in paginator] == ["gen-1", "gen-2"]
    assert [g.id async for g in paginator] == ["gen-1", "gen-2"]  # each iteration walks again
    assert len(harness.requests) == 4
    await harness.aclose()
