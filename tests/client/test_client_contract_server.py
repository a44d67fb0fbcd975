"""The client against a tiny in-memory server that speaks the contract (no sockets).

The real server is exercised end to end elsewhere; this one pins the client's reading of
shared/reference/generation-api.md: auth, ownership (404, never a leak), the envelope on
every error, rate limiting with ``Retry-After``, and a record that appears a little late.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from client_kit import Harness, sample_generation

from genledger.client import (
    APIError,
    BadRequestResponseError,
    NotFoundResponseError,
    TooManyRequestsResponseError,
    UnauthorizedResponseError,
)

ALICE, BOB = "sk-gl-alice", "sk-gl-bob"


class ContractServer:
    """Generations, keys and credits in memory; answers exactly as the contract says."""

    def __init__(self) -> None:
        self.generations: dict[str, tuple[str, dict[str, Any]]] = {}
        self.pending: dict[str, int] = {}  # id -> lookups that still answer 404
        self.rate_limited_for: int = 0

    def add(self, owner: str, data: dict[str, Any], *, visible_after: int = 0) -> None:
        self.generations[data["id"]] = (owner, data)
        self.pending[data["id"]] = visible_after

    def __call__(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in (ALICE, BOB):
            return self.error(401, "Missing or invalid API key")
        key = auth.removeprefix("Bearer ")
        if self.rate_limited_for > 0:
            self.rate_limited_for -= 1
            return self.error(429, "Rate limit exceeded", headers={"Retry-After": "1"})
        route = (request.method, request.url.path)
        if route == ("GET", "/api/v1/generation"):
            return self.get_generation(key, request.url.params.get("id", ""))
        if route == ("GET", "/api/v1/key"):
            return self.data(
                {
                    "label": key[:8] + "...",
                    "limit": None,
                    "limit_remaining": None,
                    "limit_reset": None,
                    "usage": 0.5,
                    "usage_daily": 0.5,
                    "usage_weekly": 0.5,
                    "usage_monthly": 0.5,
                    "is_free_tier": False,
                    "rate_limit": {"requests": -1, "interval": "10s", "note": "legacy"},
                }
            )
        if route == ("GET", "/api/v1/credits"):
            return self.data({"total_credits": 10.0, "total_usage": 0.5})
        return self.error(404, "Not Found")

    def get_generation(self, key: str, generation_id: str) -> httpx.Response:
        if not generation_id.startswith("gen-"):
            return self.error(400, "malformed id")
        owner, data = self.generations.get(generation_id, (None, {}))
        if owner != key:
            return self.error(404, f"Generation {generation_id} not found")
        if self.pending[generation_id] > 0:
            self.pending[generation_id] -= 1
            return self.error(404, f"Generation {generation_id} not found")
        return self.data(data)

    @staticmethod
    def data(data: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, json={"data": data})

    @staticmethod
    def error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.Response(status, json={"error": {"code": status, "message": message}}, headers=headers)


@pytest.fixture
def server() -> ContractServer:
    server = ContractServer()
    server.add(ALICE, sample_generation(id="gen-alice-1"))
    server.add(BOB, sample_generation(id="gen-bob-1"))
    return server


async def test_owner_reads_its_generation_and_key_and_credits(
    harness: Harness, server: ContractServer
) -> None:
    client = harness.client(server, api_key=ALICE)
    generation = await harness.call(client, "generations.get_generation", id="gen-alice-1")
    key = await harness.call(client, "key.get")
    credits = await harness.call(client, "credits.get")
    assert generation.id == "gen-alice-1"
    assert key.label == "sk-gl-al..." and key.limit is None
    assert credits.total_credits - credits.total_usage == 9.5


async def test_another_owners_generation_is_not_found(harness: Harness, server: ContractServer) -> None:
    client = harness.client(server, api_key=ALICE)
    with pytest.raises(NotFoundResponseError, match="gen-bob-1 not found"):
        await harness.call(client, "generations.get_generation", id="gen-bob-1")


async def test_a_wrong_key_is_unauthorized(harness: Harness, server: ContractServer) -> None:
    client = harness.client(server, api_key="sk-gl-mallory")
    with pytest.raises(UnauthorizedResponseError):
        await harness.call(client, "generations.get_generation", id="gen-alice-1")


async def test_a_malformed_id_is_a_bad_request(harness: Harness, server: ContractServer) -> None:
    client = harness.client(server, api_key=ALICE)
    with pytest.raises(BadRequestResponseError, match="malformed id"):
        await harness.call(client, "generations.get_generation", id="not-a-generation")
    assert len(harness.requests) == 1


async def test_rate_limit_is_retried_after_the_servers_delay(
    harness: Harness, server: ContractServer
) -> None:
    server.rate_limited_for = 2
    client = harness.client(server, api_key=ALICE)
    generation = await harness.call(client, "generations.get_generation", id="gen-alice-1")
    assert generation.id == "gen-alice-1"
    assert harness.sleeps == [1.0, 1.0]


async def test_rate_limit_beyond_the_retries_raises(harness: Harness, server: ContractServer) -> None:
    server.rate_limited_for = 10
    client = harness.client(server, api_key=ALICE, max_retries=1)
    with pytest.raises(TooManyRequestsResponseError) as caught:
        await harness.call(client, "generations.get_generation", id="gen-alice-1")
    assert caught.value.headers["Retry-After"] == "1"


async def test_wait_sees_a_late_record(harness: Harness, server: ContractServer) -> None:
    server.add(ALICE, sample_generation(id="gen-late"), visible_after=3)
    client = harness.client(server, api_key=ALICE)
    generation = await harness.call(client, "generations.wait", id="gen-late", poll_interval=0.1)
    assert generation.id == "gen-late"
    assert len(harness.requests) == 4


async def test_an_unknown_route_uses_the_envelope(harness: Harness, server: ContractServer) -> None:
    client = harness.client(server, api_key=ALICE, base_url="http://testserver/api/v2")
    with pytest.raises(NotFoundResponseError):
        await harness.call(client, "credits.get")
    assert not issubclass(NotFoundResponseError, APIError)
