"""The management API, /key and /credits, on the default single-instance gateway (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from genledger.client import Client, ForbiddenResponseError
from genledger.core.ids import hash_key
from tests.e2e.conftest import MODEL, Keys
from tests.gateway import GatewayServer, create_key


@pytest.fixture(scope="module")
def admin(database_url: str, gateway: GatewayServer) -> str:
    return create_key(database_url, "admin", management=True)


@pytest.fixture
def manage(gateway: GatewayServer, admin: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {admin}"}) as http:
        yield http


def test_ordinary_keys_get_403_on_management_routes(gateway: GatewayServer, keys: Keys):
    headers = {"Authorization": f"Bearer {keys.alice}"}
    with httpx.Client(base_url=gateway.base_url, headers=headers) as http:
        for response in (
            http.get("/keys"),
            http.post("/keys", json={"name": "x"}),
            http.get(f"/keys/{hash_key(keys.bob)}"),
            http.patch(f"/keys/{hash_key(keys.bob)}", json={"disabled": True}),
            http.delete(f"/keys/{hash_key(keys.bob)}"),
        ):
            assert response.status_code == 403
            assert response.json()["error"]["code"] == 403


def test_management_keys_cannot_make_completions(gateway: GatewayServer, admin: str):
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert response.status_code == 403


def test_create_use_read_update_delete(gateway: GatewayServer, manage: httpx.Client):
    created = manage.post("/keys", json={"name": "team-a", "limit": 1.5, "limit_reset": "monthly"})
    assert created.status_code == 201, created.text
    secret = created.json()["key"]
    data = created.json()["data"]
    assert data["hash"] == hash_key(secret)
    assert data["limit"] == 1.5 and data["limit_remaining"] == 1.5 and data["limit_reset"] == "monthly"
    assert data["usage"] == 0 and data["disabled"] is False

    completion = OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "spend a little"}]
    )
    cost = completion.usage.model_extra["cost"]

    listed = {k["name"]: k for k in manage.get("/keys").json()["data"]}
    assert "team-a" in listed and "key" not in listed["team-a"]
    assert secret not in str(listed), "secrets must never be listed"
    assert listed["team-a"]["label"] == f"{secret[:12]}...{secret[-3:]}"
    one = manage.get(f"/keys/{data['hash']}").json()["data"]
    assert one["usage"] == cost and one["usage_daily"] == cost and one["usage_monthly"] == cost
    assert one["limit_remaining"] == pytest.approx(1.5 - cost)

    with Client(api_key=secret, base_url=gateway.base_url) as client:
        info = client.key.get()
        assert info.limit == 1.5 and info.usage == cost and info.limit_reset == "monthly"
        assert info.limit_remaining == pytest.approx(1.5 - cost)
        assert info.is_free_tier is False
        credits = client.credits.get()
        assert credits.total_credits == 1.5 and credits.total_usage == cost

    patched = manage.patch(f"/keys/{data['hash']}", json={"limit": None, "name": "team-a2", "label": "A"})
    assert patched.status_code == 200
    assert patched.json()["data"]["limit"] is None and patched.json()["data"]["name"] == "team-a2"
    assert manage.delete(f"/keys/{data['hash']}").json() == {"deleted": True}
    assert manage.get(f"/keys/{data['hash']}").status_code == 404
    gone = httpx.get(gateway.base_url + "/key", headers={"Authorization": f"Bearer {secret}"})
    assert gone.status_code == 401


@pytest.mark.parametrize(
    ("method", "body", "fragment"),
    [
        ("POST", {}, "'name'"),
        ("POST", {"name": ""}, "'name'"),
        ("POST", {"name": 5}, "'name'"),
        ("PATCH", {"label": "x" * 5000}, "'label'"),
        ("POST", {"name": "x", "limit": -1}, "'limit'"),
        ("POST", {"name": "x", "limit": "lots"}, "'limit'"),
        ("POST", {"name": "x", "limit": 1e30}, "'limit'"),
        ("POST", {"name": "x", "limit_reset": "hourly"}, "'limit_reset'"),
        ("POST", {"name": "x", "requests_per_minute": -5}, "'requests_per_minute'"),
        ("POST", {"name": "x", "management": "yes"}, "'management'"),
        ("PATCH", {}, "Nothing to change"),
        ("PATCH", {"disabled": "no"}, "'disabled'"),
        # Nothing sent is silently dropped: an unknown field is named, even beside good ones.
        ("POST", {"name": "x", "limits": 5}, "'limits'"),
        ("POST", {"name": "x", "include_byok_in_limit": "yes"}, "'include_byok_in_limit'"),
        ("PATCH", {"disabled": True, "colour": "red"}, "'colour'"),
        ("PATCH", {"management": True}, "'management'"),
    ],
)
def test_bad_management_bodies_are_400(manage: httpx.Client, keys: Keys, method, body, fragment):
    url = "/keys" if method == "POST" else f"/keys/{hash_key(keys.bob)}"
    response = manage.request(method, url, json=body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]
    if fragment.startswith("'"):  # a field's problem names the field, as metadata.param too
        assert response.json()["error"]["metadata"]["param"] == fragment.strip("'")


def test_duplicate_names_and_unknown_hashes(manage: httpx.Client):
    assert manage.post("/keys", json={"name": "dup"}).status_code == 201
    assert manage.post("/keys", json={"name": "dup"}).status_code == 400
    assert manage.get("/keys/" + "0" * 64).status_code == 404
    assert manage.patch("/keys/" + "0" * 64, json={"disabled": True}).status_code == 404
    assert manage.delete("/keys/" + "0" * 64).status_code == 404


def test_the_client_raises_the_gateways_403_as_forbidden(gateway: GatewayServer, keys: Keys):
    # genledger.client has no management calls. Rooted under /keys/, its GET "key" is
    # GET /keys/key: a management route, which refuses an ordinary key before reading the hash.
    client = Client(api_key=keys.alice, base_url=gateway.base_url + "/keys/", max_retries=0)
    with client, pytest.raises(ForbiddenResponseError) as caught:
        client.key.get()
    forbidden = caught.value
    assert forbidden.response.request.url.path == "/api/v1/keys/key"
    assert forbidden.status_code == 403
    assert forbidden.error is not None and forbidden.error.code == 403
    assert forbidden.error.message == (
        "Only management keys may manage keys (genledger keys create --management)"
    )


def test_keys_without_a_limit(gateway: GatewayServer, keys: Keys):
    with Client(api_key=keys.bob, base_url=gateway.base_url) as client:
        info = client.key.get()
        assert info.limit is None and info.limit_remaining is None
        assert client.credits.get().total_credits == 0


def test_the_key_list_takes_openrouters_include_disabled_and_offset(
    gateway: GatewayServer, manage: httpx.Client, admin: str, keys: Keys
):
    every = [k["name"] for k in manage.get("/keys", params={"include_disabled": "true"}).json()["data"]]
    assert "disabled" in every and "alice" in every
    default = [k["name"] for k in manage.get("/keys").json()["data"]]
    assert default == [name for name in every if name != "disabled"]  # OpenRouter's default: false
    assert [k["name"] for k in manage.get("/keys", params={"offset": 1}).json()["data"]] == default[1:]
    assert manage.get("/keys", params={"offset": len(default)}).json()["data"] == []
    for params, name in [
        ({"offset": "-1"}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"include_disabled": "yes"}, "include_disabled"),
        ({"workspace_id": "w"}, "workspace_id"),
    ]:
        refused = manage.get("/keys", params=params)
        assert refused.status_code == 400 and refused.json()["error"]["metadata"]["param"] == name

    # OpenRouter's include_byok_in_limit is kept as set, and read back (nothing sent is lost).
    bob = hash_key(keys.bob)
    assert manage.get(f"/keys/{bob}").json()["data"]["include_byok_in_limit"] is False
    changed = manage.patch(f"/keys/{bob}", json={"include_byok_in_limit": True})
    assert changed.status_code == 200 and changed.json()["data"]["include_byok_in_limit"] is True
    assert manage.get(f"/keys/{bob}").json()["data"]["include_byok_in_limit"] is True
    assert (
        manage.patch(f"/keys/{bob}", json={"include_byok_in_limit": None}).json()["data"][
            "include_byok_in_limit"
        ]
        is False
    )  # null: the default

    from openrouter import OpenRouter

    with OpenRouter(api_key=admin, server_url=gateway.base_url) as sdk:
        listed = sdk.api_keys.list(include_disabled=True, offset=0)
        assert [k.name for k in listed.data] == every
        assert [k.name for k in sdk.api_keys.list().data] == default
        created = sdk.api_keys.create(name="byok-counted", include_byok_in_limit=True)
        assert created.data.include_byok_in_limit is True
        assert sdk.api_keys.get(hash=created.data.hash).data.include_byok_in_limit is True
        manage.delete(f"/keys/{created.data.hash}")
