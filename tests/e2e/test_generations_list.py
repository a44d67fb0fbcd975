"""Attribution recorded by a real gateway, and found again through GET /generations."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

from genledger.api.generation_wire import LEDGER_KEYS
from tests.e2e.conftest import MODEL, Keys
from tests.gateway import GatewayServer, create_key

MESSAGES = [{"role": "user", "content": "hi"}]


def contract_part(item: dict) -> dict:
    """A list item without the ledger's extension keys: ``/generation``'s object."""
    assert item["adjustments"] == [] and item["adjusted_usage"] == item["usage"]
    assert isinstance(item["price_version"], int)
    return {k: v for k, v in item.items() if k not in LEDGER_KEYS}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def listed(gateway: GatewayServer, key: str, **params) -> httpx.Response:
    return httpx.get(gateway.base_url + "/generations", params=params, headers=bearer(key), timeout=10)


def test_the_official_client_sends_metadata_and_user_and_the_list_finds_them(
    gateway: GatewayServer, keys: Keys
):
    team = f"team-{uuid.uuid4().hex[:8]}"
    client = openai.OpenAI(
        api_key=keys.alice,
        base_url=gateway.base_url,
        max_retries=0,
        default_headers={"X-Title": "List App", "HTTP-Referer": "https://list.example"},
    )
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, user="user-42", metadata={"team": team, "env": "test"}
    )
    response = listed(gateway, keys.alice, **{"metadata[team]": team})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["id"] for item in body["data"]] == [completion.id]
    item = body["data"][0]
    assert item["metadata"] == {"team": team, "env": "test"}
    assert (item["external_user"], item["app_title"], item["http_referer"]) == (
        "user-42",
        "List App",
        "https://list.example",
    )
    single = httpx.get(
        gateway.base_url + "/generation", params={"id": completion.id}, headers=bearer(keys.alice)
    )
    # One shape for the record and the list (the record's one extension is the feedback).
    assert single.json()["data"] == {**contract_part(item), "feedback": item["feedback"]}
    assert listed(gateway, keys.alice, external_user="user-42", **{"metadata[team]": team}).json()[
        "data"
    ] == [item]
    assert (
        listed(gateway, keys.alice, **{"metadata[team]": team, "metadata[env]": "prod"}).json()["data"] == []
    )


@pytest.mark.parametrize("stream", [False, True])
def test_session_id_comes_from_the_body_else_the_header(gateway: GatewayServer, keys: Keys, stream: bool):
    session = f"s-{uuid.uuid4().hex}"
    client = openai.OpenAI(api_key=keys.alice, base_url=gateway.base_url, max_retries=0)
    from_header = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=stream, extra_headers={"x-session-id": session}
    )
    from_both = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=stream,
        extra_headers={"x-session-id": "not-this-one"},
        extra_body={"session_id": session},
    )
    ids = (
        [from_header.id, from_both.id]
        if not stream
        else [next(iter(from_header)).id, next(iter(from_both)).id]
    )
    if stream:
        for stream_ in (from_header, from_both):
            for _ in stream_:
                pass
    data = listed(gateway, keys.alice, session_id=session).json()["data"]
    assert [item["id"] for item in data] == ids[::-1]
    assert all(item["session_id"] == session for item in data)


def test_an_ordinary_key_sees_its_own_and_a_management_key_sees_all(
    gateway: GatewayServer, keys: Keys, database_url
):
    marker = f"vis-{uuid.uuid4().hex[:8]}"
    for key in (keys.alice, keys.bob):
        openai.OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0).chat.completions.create(
            model=MODEL, messages=MESSAGES, user=marker
        )
    alice_sees = listed(gateway, keys.alice, external_user=marker).json()["data"]
    assert len(alice_sees) == 1
    admin = create_key(database_url, f"admin-{marker}", management=True)
    everyone = listed(gateway, admin, external_user=marker).json()["data"]
    assert len(everyone) == 2
    keys_listed = httpx.get(gateway.base_url + "/keys", headers=bearer(admin)).json()["data"]
    bob_hash = next(k["hash"] for k in keys_listed if k["name"] == "bob")
    only_bob = listed(gateway, admin, external_user=marker, api_key_hash=bob_hash).json()["data"]
    assert len(only_bob) == 1 and only_bob[0]["id"] != alice_sees[0]["id"]
    refused = listed(gateway, keys.alice, api_key_hash=bob_hash)
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "WzEsMl0"}, "cursor"),  # [1, 2]: a cursor's shape, not its types
        ({"cursor": "W251bGwsbnVsbF0"}, "cursor"),  # [null, null]
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01"}, "created_before"),
        ({"created_before": "0001-01-01T00:00:00+14:00"}, "created_before"),  # year 0 in UTC
        ({"streamed": "maybe"}, "streamed"),
        ({"cancelled": "yes"}, "cancelled"),
        ({"drifted": "yes"}, "drifted"),
        ({"min_cost": "-1"}, "min_cost"),
        ({"min_cost": "abc"}, "min_cost"),
        ({"api_key_hash": "xyz"}, "api_key_hash"),
        ({"colour": "red"}, "colour"),
        ({"metadata[]": "x"}, "metadata[]"),
        ({"model": ""}, "model"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(gateway: GatewayServer, keys: Keys, params, param):
    response = listed(gateway, keys.alice, **params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["metadata"]["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"session_id": ""}, "session_id"),
        ({"session_id": "x" * 257}, "session_id"),
        ({"session_id": 5}, "session_id"),
        ({"metadata": "team=a"}, "metadata"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata." + "k" * 64),
        ({"metadata": {"team": 5}}, "metadata.team"),
        ({"metadata": {"team": "v" * 513}}, "metadata.team"),
        ({"user": "u" * 1001}, "user"),
    ],
)
def test_bad_attribution_is_a_400_naming_the_field(gateway: GatewayServer, keys: Keys, body, param):
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, **body},
        headers=bearer(keys.alice),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["metadata"]["param"] == param


def test_a_session_header_that_is_too_long_is_a_400(gateway: GatewayServer, keys: Keys):
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": MODEL, "messages": MESSAGES},
        headers={**bearer(keys.alice), "x-session-id": "x" * 257},
    )
    assert response.status_code == 400 and response.json()["error"]["metadata"]["param"] == "x-session-id"


@pytest.mark.parametrize(
    ("header", "longest"), [("X-Title", 1000), ("HTTP-Referer", 2000), ("User-Agent", 1000)]
)
def test_an_attribution_header_that_is_too_long_is_a_400_and_the_longest_is_recorded(
    gateway: GatewayServer, keys: Keys, header: str, longest: int
):
    """PostgreSQL holds each in a column of bounded length: a longer value was answered, then
    failed to be recorded (a 500, the upstream's work charged to no one)."""
    value = "http://a/" + "r" * (longest - 9)
    longest_user = "u" * 1000
    for sent, status in ((value, 200), (value + "r", 400)):
        response = httpx.post(
            gateway.base_url + "/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "user": longest_user},
            headers={**bearer(keys.alice), header: sent},
        )
        assert response.status_code == status, response.text
    assert response.json()["error"]["metadata"]["param"] == header
    found = listed(gateway, keys.alice, external_user=longest_user, limit=1)
    assert found.status_code == 200, found.text
    recorded = found.json()["data"][0]
    shown = {"X-Title": "app_title", "HTTP-Referer": "http_referer", "User-Agent": "user_agent"}[header]
    assert recorded[shown] == value
