"""GET /api/v1/generations/export from a real gateway: the list's items, streamed in batches."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import orjson
import pytest

from genledger.api.export_wire import CSV_COLUMNS
from genledger.api.generation_wire import LEDGER_KEYS
from genledger.core.content import Feedback
from genledger.core.generation import Generation, ProviderAttempt
from genledger.core.ids import new_generation_id
from genledger.core.stores import GenerationFilter
from tests.e2e.conftest import MODEL, Keys
from tests.gateway import GatewayServer, create_key, run_with_ledger, seed_generations

# More than two export batches (1000), so that the keyset walk crosses batch boundaries.
SEEDED = 2100
BASE = datetime(2026, 3, 1, tzinfo=UTC)


def contract_part(item: dict) -> dict:
    """A list item without the ledger's extension keys: ``/generation``'s object."""
    assert item["adjustments"] == [] and item["adjusted_usage"] == item["usage"]
    assert isinstance(item["price_version"], int)
    return {k: v for k, v in item.items() if k not in LEDGER_KEYS}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def export(gateway: GatewayServer, key: str, **params: str) -> httpx.Response:
    return httpx.get(gateway.base_url + "/generations/export", params=params, headers=bearer(key), timeout=30)


def listed(gateway: GatewayServer, key: str, **params: str) -> list[dict[str, Any]]:
    """Every item the list gives, walking its cursors."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = httpx.get(
            gateway.base_url + "/generations",
            params={**params, "limit": "1000", **({"cursor": cursor} if cursor else {})},
            headers=bearer(key),
            timeout=30,
        )
        assert page.status_code == 200, page.text
        items += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in response.content.splitlines()]


def made(user: str, offset: timedelta = timedelta()):
    def make(key_id: str, i: int) -> Generation:
        return Generation(
            id=new_generation_id(),
            key_id=key_id,
            # Three at each second: ties are broken by id, across batch boundaries too.
            created_at=BASE + offset - timedelta(seconds=i // 3),
            model=("acme/a", "acme/b")[i % 2],
            provider_name="FakeAI",
            total_cost_pico=i * 1_000_000_007,
            charge_pico=i * 1_000_000_007,
            streamed=i % 3 == 0,
            cancelled=False,
            latency_ms=12.5 + i,
            finish_reason=("stop", "length")[i % 5 == 0],
            tokens_prompt=i,
            tokens_completion=2 * i,
            external_user=user,
            session_id=f"s-{i % 7}",
            app_title='Title, with "quotes"\nand a newline',
            provider_responses=(ProviderAttempt(200, "FakeAI", 10.0, f"up-{i}"),),
            metadata={"team": ("red", "blue")[i % 2], "i": str(i)},
        )

    return make


@pytest.fixture(scope="module")
def marker(database_url: str, keys: Keys) -> str:
    """A user name on SEEDED generations of alice's and 10 of bob's, seeded once per database;
    alice gave feedback on every hundredth of hers, which the exports carry like the list."""
    user = f"exp-{uuid.uuid4().hex[:8]}"
    seed_generations(database_url, "alice", made(user), SEEDED)
    seed_generations(database_url, "bob", made(user, timedelta(milliseconds=500)), 10)

    async def give_feedback(ledger) -> None:
        alice = await ledger.keys.find_by_name("alice")
        mine = (
            await ledger.generations.list(GenerationFilter(key_id=alice.id, external_user=user), limit=1000)
        ).items
        for i, generation in enumerate(mine[::100]):
            comment = f'too slow, "really"\n{i}' if i % 2 else None
            await ledger.feedback.put(Feedback(generation.id, alice.id, "latency", comment, BASE))

    run_with_ledger(database_url, give_feedback)
    return user


@pytest.fixture(scope="module")
def admin(database_url: str) -> str:
    return create_key(database_url, f"admin-{uuid.uuid4().hex[:8]}", management=True)


def test_ndjson_lines_are_the_list_items_newest_first_across_batches(
    gateway: GatewayServer, keys: Keys, marker: str
):
    response = export(gateway, keys.alice, external_user=marker)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="generations-\d{8}T\d{6}Z\.ndjson"', disposition)
    exported = lines(response)
    assert len(exported) == SEEDED
    assert exported == listed(gateway, keys.alice, external_user=marker)
    given = [item["feedback"] for item in exported if item["feedback"] is not None]
    assert len(given) == 10 and given[1] == {
        "category": "latency",
        "comment": 'too slow, "really"\n1',
        "created_at": BASE.isoformat(),
    }
    assert len({item["id"] for item in exported}) == SEEDED


def cell_value(cell: str, like: Any) -> Any:
    """A CSV cell read back: strings as they are, an empty cell null, anything else JSON."""
    if isinstance(like, str):
        return cell
    return None if cell == "" else orjson.loads(cell)


def test_csv_has_the_documented_columns_and_round_trips_every_value(
    gateway: GatewayServer, keys: Keys, marker: str
):
    response = export(gateway, keys.alice, external_user=marker, format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].endswith('.csv"')
    reader = csv.DictReader(io.StringIO(response.text, newline=""))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = list(reader)
    items = listed(gateway, keys.alice, external_user=marker)
    assert len(rows) == len(items) == SEEDED
    for row, item in zip(rows, items, strict=True):
        assert {column: cell_value(row[column], item[column]) for column in CSV_COLUMNS} == item
    assert rows[0]["app_title"] == 'Title, with "quotes"\nand a newline'
    assert orjson.loads(rows[0]["metadata"]) == items[0]["metadata"]


@pytest.mark.parametrize(
    "filters",
    [
        {"model": "acme/b"},
        {"streamed": "true", "finish_reason": "length"},
        {"metadata[team]": "red", "session_id": "s-3"},
        {"min_cost": "1.5"},
        {"created_after": "2026-02-28T23:55:00Z", "created_before": "2026-02-28T23:58:00+00:00"},
    ],
)
def test_filters_select_what_the_list_selects(
    gateway: GatewayServer, keys: Keys, marker: str, filters: dict[str, str]
):
    expected = listed(gateway, keys.alice, external_user=marker, **filters)
    assert 0 < len(expected) < SEEDED
    assert lines(export(gateway, keys.alice, external_user=marker, **filters)) == expected
    in_csv = list(
        csv.DictReader(
            io.StringIO(
                export(gateway, keys.alice, external_user=marker, format="csv", **filters).text, newline=""
            )
        )
    )
    assert [row["id"] for row in in_csv] == [item["id"] for item in expected]


def test_an_ordinary_key_exports_its_own_and_a_management_key_any_or_one(
    gateway: GatewayServer, keys: Keys, marker: str, admin: str
):
    assert {item["id"] for item in lines(export(gateway, keys.bob, external_user=marker))} == {
        item["id"] for item in listed(gateway, keys.bob, external_user=marker)
    }
    assert len(lines(export(gateway, keys.bob, external_user=marker))) == 10
    everyone = lines(export(gateway, admin, external_user=marker))
    assert len(everyone) == SEEDED + 10
    assert everyone == listed(gateway, admin, external_user=marker)
    keys_listed = httpx.get(gateway.base_url + "/keys", headers=bearer(admin)).json()["data"]
    bob_hash = next(k["hash"] for k in keys_listed if k["name"] == "bob")
    only_bob = lines(export(gateway, admin, external_user=marker, api_key_hash=bob_hash))
    assert only_bob == listed(gateway, keys.bob, external_user=marker)
    refused = export(gateway, keys.alice, api_key_hash=bob_hash)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/json"
    missing = export(gateway, admin, api_key_hash="0" * 64)
    assert missing.status_code == 404 and missing.json()["error"]["metadata"]["param"] == "api_key_hash"


def test_what_a_real_gateway_recorded_is_exported_as_get_generation_shows_it(
    gateway: GatewayServer, keys: Keys
):
    team = f"team-{uuid.uuid4().hex[:8]}"
    client = openai.OpenAI(api_key=keys.alice, base_url=gateway.base_url, max_retries=0)
    ids = [
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], metadata={"team": team}
        ).id
        for _ in range(3)
    ]
    exported = lines(export(gateway, keys.alice, **{"metadata[team]": team}))
    assert [item["id"] for item in exported] == ids[::-1]
    for item in exported:
        single = httpx.get(
            gateway.base_url + "/generation", params={"id": item["id"]}, headers=bearer(keys.alice)
        )
        shown = single.json()["data"]
        assert shown.pop("feedback") == item["feedback"]  # /generation's one extension
        assert shown == contract_part(item)


def test_an_export_of_nothing_is_empty_or_only_the_header(gateway: GatewayServer, keys: Keys):
    nothing = {"external_user": f"nobody-{uuid.uuid4().hex}"}
    response = export(gateway, keys.alice, **nothing)
    assert response.status_code == 200 and response.content == b""
    response = export(gateway, keys.alice, format="csv", **nothing)
    assert response.status_code == 200 and response.text == ",".join(CSV_COLUMNS) + "\r\n"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"format": "xml"}, "format"),
        ({"format": "parquet"}, "format"),
        ({"limit": "10"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"streamed": "maybe"}, "streamed"),
        ({"min_cost": "-1"}, "min_cost"),
        ({"api_key_hash": "xyz"}, "api_key_hash"),
        ({"metadata[]": "x"}, "metadata[]"),
    ],
)
def test_a_bad_parameter_is_a_400_before_anything_streams(
    gateway: GatewayServer, keys: Keys, params: dict[str, str], param: str
):
    response = export(gateway, keys.alice, **params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert "content-disposition" not in response.headers
    assert response.json()["error"]["metadata"]["param"] == param


def test_an_export_needs_a_key(gateway: GatewayServer):
    response = httpx.get(gateway.base_url + "/generations/export")
    assert response.status_code == 401
