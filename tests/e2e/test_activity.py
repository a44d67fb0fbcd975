"""GET /api/v1/activity through a real gateway, read by the official openrouter SDK."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
from openrouter import OpenRouter, errors
from openrouter.utils import BackoffStrategy, RetryConfig

from genledger.core.generation import Generation
from genledger.core.money import to_usd
from genledger.core.stores import GenerationFilter
from tests.e2e.conftest import MODEL, Keys
from tests.gateway import GatewayServer, create_key, run_with_ledger
from tests.ledger.records import generation

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def admin(database_url: str) -> str:
    return create_key(database_url, "activity-admin", management=True)


@pytest.fixture(scope="module")
def hashes(database_url: str, keys: Keys) -> dict[str, str]:
    async def by_name(ledger) -> dict[str, str]:
        return {key.name: key.hash for key in await ledger.keys.list()}

    return run_with_ledger(database_url, by_name)


@pytest.fixture(scope="module")
def records(gateway: GatewayServer, keys: Keys, database_url: str) -> list[Generation]:
    """Generations made through the gateway today, plus back-dated ones written to the ledger."""
    for key, user, stream in ((keys.alice, "u1", False), (keys.alice, "u2", True), (keys.bob, "u1", False)):
        client = openai.OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
        answer = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, user=user, stream=stream, metadata={"team": "search"}
        )
        if stream:
            for _ in answer:
                pass

    async def backdate_and_read(ledger) -> list[Generation]:
        bob = await ledger.keys.find_by_name("bob")
        today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        for days_ago, charge in ((3, 7 * 10**15 + 1), (29, 10**12), (30, 5), (3, 9)):
            await ledger.generations.record(
                generation(bob.id, created_at=today - timedelta(days=days_ago), charge_pico=charge)
            )
        return (await ledger.generations.list(GenerationFilter(), limit=1000)).items

    return run_with_ledger(database_url, backdate_and_read)


def in_window(g: Generation) -> bool:
    today = datetime.now(UTC).date()
    return today - timedelta(days=29) <= g.created_at.date() <= today


def endpoint_totals(records: list[Generation]) -> dict[tuple[str, str, str], list[int]]:
    totals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * 5)
    for g in records:
        total = totals[(g.created_at.date().isoformat(), g.model, g.provider_name or "unknown")]
        for i, amount in enumerate(
            (1, g.charge_pico, g.tokens_prompt or 0, g.tokens_completion or 0, g.native_tokens_cached or 0)
        ):
            total[i] += amount
    return totals


def sdk_totals(items) -> dict[tuple[str, str, str], list[int]]:
    return {
        (i.date_, i.model, i.provider_name): [
            i.requests,
            i.usage,
            i.prompt_tokens,
            i.completion_tokens,
            i.cached_tokens,
        ]
        for i in items
    }


def as_usd(totals: dict) -> dict:
    return {group: [t[0], to_usd(t[1]), *t[2:]] for group, t in totals.items()}


def test_the_sdk_reads_the_last_30_days_per_day_model_and_provider(
    gateway: GatewayServer, admin: str, records: list[Generation], hashes: dict[str, str]
):
    with OpenRouter(api_key=admin, server_url=gateway.base_url, retry_config=NO_RETRIES) as sdk:
        everything = sdk.analytics.get_user_activity().data
        only_bob = sdk.analytics.get_user_activity(request={"api_key_hash": hashes["bob"]}).data
        today = datetime.now(UTC).date().isoformat()
        one_day = sdk.analytics.get_user_activity(request={"date": today}).data
        workspace = sdk.analytics.get_user_activity(request={"group_by": "workspace"}).data
        in_default = sdk.analytics.get_user_activity(request={"workspace_id": "default"}).data
    shown = [g for g in records if in_window(g)]
    assert len(shown) == len(records) - 1  # the generation of 30 days ago is out of the window
    assert sdk_totals(everything) == as_usd(endpoint_totals(shown))
    bob_id = next(g.key_id for g in records if g.created_at.date().isoformat() != today)
    assert sdk_totals(only_bob) == as_usd(endpoint_totals([g for g in shown if g.key_id == bob_id]))
    assert sdk_totals(one_day) == as_usd(
        endpoint_totals([g for g in shown if g.created_at.date().isoformat() == today])
    )
    assert sum(i.requests for i in one_day) == 3
    item = everything[-1]
    assert (item.model_permaslug, item.endpoint_id) == (item.model, f"{item.provider_name}/{item.model}")
    assert item.byok_usage_inference == 0 and item.workspace_id is None
    assert sdk_totals(workspace) == sdk_totals(everything) == sdk_totals(in_default)
    assert {i.workspace_id for i in workspace} == {"default"}


def test_group_by_sums_exactly_per_key_user_and_metadata(
    gateway: GatewayServer, admin: str, records: list[Generation], hashes: dict[str, str]
):
    response = httpx.get(
        gateway.base_url + "/activity",
        params={"group_by": "key,user,metadata.team"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert response.status_code == 200, response.text
    by_id = {key_hash: name for name, key_hash in hashes.items()}
    totals: dict[tuple, list] = defaultdict(lambda: [0, 0])
    for g in filter(in_window, records):
        totals[(g.key_id, g.external_user, (g.metadata or {}).get("team"))][0] += 1
        totals[(g.key_id, g.external_user, (g.metadata or {}).get("team"))][1] += g.charge_pico
    items = response.json()["data"]
    assert set(items[0]) == {
        "api_key_hash", "external_user", "metadata.team", "usage", "byok_usage_inference",
        "requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
    }  # fmt: skip
    assert {by_id[i["api_key_hash"]] for i in items} == {"alice", "bob"}
    assert sum(i["requests"] for i in items) == sum(t[0] for t in totals.values())
    assert sorted((i["requests"], i["usage"]) for i in items) == sorted(
        (count, to_usd(pico)) for count, pico in totals.values()
    )


@pytest.mark.parametrize(
    "group_by",
    [
        "day",
        "hour",
        "model",
        "provider",
        "key",
        "user",
        "session",
        "workspace",
        ["hour", "metadata.team"],  # README's example
        ["model", "provider", "day"],
    ],
)
def test_the_typed_client_reads_every_grouping(
    gateway: GatewayServer, admin: str, records: list[Generation], group_by: str | list[str]
):
    from genledger.client import Client

    with Client(api_key=admin, base_url=gateway.base_url, max_retries=0) as client:
        items = client.activity.get(group_by=group_by)
        whole = client.activity.get()
    assert (
        sum(i.requests for i in items)
        == sum(i.requests for i in whole)
        == len(list(filter(in_window, records)))
    )
    assert sum(i.usage for i in items) == pytest.approx(sum(i.usage for i in whole))
    if "hour" in group_by:
        assert all(i.hour is not None and i.hour.endswith(":00:00Z") for i in items)
    if "metadata.team" in group_by:
        assert {i.metadata_groups["team"] for i in items} <= {"search", None}
    if group_by == "workspace":
        assert {i.workspace_id for i in items} == {"default"} and all(i.model for i in items)
    elif "model" in group_by:
        assert MODEL in {i.model for i in items}


def test_only_management_keys_read_activity(gateway: GatewayServer, keys: Keys, admin: str):
    ordinary = OpenRouter(api_key=keys.alice, server_url=gateway.base_url, retry_config=NO_RETRIES)
    with ordinary as sdk, pytest.raises(errors.ForbiddenResponseError):
        sdk.analytics.get_user_activity()
    management = OpenRouter(api_key=admin, server_url=gateway.base_url, retry_config=NO_RETRIES)
    with management as sdk, pytest.raises(errors.NotFoundResponseError):
        sdk.analytics.get_user_activity(request={"api_key_hash": "0" * 64})


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"date": "2026-13-01"}, "date"),
        ({"date": "yesterday"}, "date"),
        ({"date": "2026-1-01"}, "date"),
        ({"date": "9999-12-31"}, "date"),
        ({"api_key_hash": "xyz"}, "api_key_hash"),
        ({"group_by": "colour"}, "group_by"),
        ({"group_by": "day,"}, "group_by"),
        ({"group_by": "metadata."}, "group_by"),
        ({"workspace_id": "w"}, "workspace_id"),
        ({"user_id": "u-1"}, "user_id"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(gateway: GatewayServer, admin: str, params, param):
    response = httpx.get(
        gateway.base_url + "/activity", params=params, headers={"Authorization": f"Bearer {admin}"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["metadata"]["param"] == param
    if params == {"date": "9999-12-31"}:  # a day, but one without a next day to end it
        assert "9999-12-30 or earlier" in response.json()["error"]["message"]
