"""Keys that end: ``expires_at`` from the management API and the CLI, and the 401 after it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from genledger.core.ids import hash_key
from tests.e2e.conftest import MODEL
from tests.e2e.test_cli import folder, run  # noqa: F401  (the fixture, as the CLI's tests use it)
from tests.gateway import GatewayServer, create_key, run_with_ledger

CHAT = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def admin(database_url: str, gateway: GatewayServer) -> str:
    return create_key(database_url, "expiry-admin", management=True)


@pytest.fixture
def manage(gateway: GatewayServer, admin: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {admin}"}) as http:
        yield http


def test_a_key_works_until_its_expiry_and_then_gets_401_saying_it_expired(
    gateway: GatewayServer, manage: httpx.Client
):
    later = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = manage.post("/keys", json={"name": "ends-later", "expires_at": later.isoformat()})
    assert created.status_code == 201, created.text
    secret, key_hash = created.json()["key"], created.json()["data"]["hash"]
    assert datetime.fromisoformat(created.json()["data"]["expires_at"]) == later
    assert datetime.fromisoformat(manage.get(f"/keys/{key_hash}").json()["data"]["expires_at"]) == later
    listed = {k["hash"]: k for k in manage.get("/keys").json()["data"]}
    assert datetime.fromisoformat(listed[key_hash]["expires_at"]) == later

    sdk = OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
    assert sdk.chat.completions.create(**CHAT).choices
    own = httpx.get(f"{gateway.base_url}/key", headers={"Authorization": f"Bearer {secret}"})
    assert datetime.fromisoformat(own.json()["data"]["expires_at"]) == later

    # Ended (an expiry in the past ends it at once), through the management API.
    past = "2020-01-02T03:04:05Z"
    changed = manage.patch(f"/keys/{key_hash}", json={"expires_at": past})
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["expires_at"] == "2020-01-02T03:04:05+00:00"
    with pytest.raises(AuthenticationError) as caught:
        sdk.chat.completions.create(**CHAT)
    assert caught.value.status_code == 401
    error = caught.value.body
    assert "expired" in error["message"] and "2020-01-02T03:04:05" in error["message"]
    refused = httpx.get(f"{gateway.base_url}/key", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]

    # Never again: null removes the expiry.
    assert manage.patch(f"/keys/{key_hash}", json={"expires_at": None}).json()["data"]["expires_at"] is None
    assert sdk.chat.completions.create(**CHAT).choices


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("soon", "must be an ISO 8601 time"),
        (5, "must be an ISO 8601 time"),
        ("2026-13-01T00:00:00Z", "must be an ISO 8601 time"),
        (True, "must be an ISO 8601 time"),
        ("9999-12-31T23:59:59-05:00", "out of range"),  # ISO 8601, but year 10000 in UTC
    ],
)
def test_a_bad_expires_at_is_a_400_naming_it(manage: httpx.Client, value: object, says: str):
    response = manage.post("/keys", json={"name": "bad-expiry", "expires_at": value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["metadata"]["param"] == "expires_at"
    assert says in response.json()["error"]["message"]


def test_expiry_from_the_command_line(folder: Path):  # noqa: F811
    code, out = run("keys", "create", "--name", "temp", "--expires-at", "2030-06-01T12:00:00Z")
    assert code == 0, out
    secret = out.strip()
    code, out = run("keys", "list")
    assert "2030-06-01T12:00:00" in out

    def stored() -> datetime | None:
        async def read(ledger):
            key = await ledger.keys.find_by_hash(hash_key(secret))
            return key.expires_at

        return run_with_ledger(f"sqlite:///{folder}/genledger.db", read)

    assert stored() == datetime(2030, 6, 1, 12, tzinfo=UTC)
    code, out = run("keys", "expire", "temp")  # now
    assert code == 0 and "temp expires" in out
    ended = stored()
    assert ended is not None and ended <= datetime.now(UTC)
    code, out = run("keys", "expire", "temp", "--never")
    assert code == 0 and stored() is None
    code, out = run("keys", "expire", "temp", "--at", "2031-01-01")
    assert code == 0 and stored() == datetime(2031, 1, 1, tzinfo=UTC)
    code, out = run("keys", "expire", "temp", "--at", "tomorrow")
    assert code == 2 and "--at must be an ISO 8601 time" in out  # the option given, by its name
    code, out = run("keys", "expire", "temp", "--at", "9999-12-31T23:59:59-05:00")  # year 10000 in UTC
    assert code == 2 and "--at is out of range" in out and "years 1 to 9999" in out, out
    assert run("keys", "expire", "temp", "--at", "2031-01-01", "--never")[0] == 2
    assert run("keys", "create", "--name", "other", "--expires-at", "later")[0] == 2
    assert run("keys", "expire", "nobody")[0] == 1
