"""The dashboard in process: sessions, CSRF, scoping, forms and headers, on in-memory stores.

The browser tests (tests/browser) drive the same pages in Chromium against a real gateway;
these pin the rules one request at a time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest

from genledger.api import create_app
from genledger.api.dashboard.session import SESSION_COOKIE, sign, unsign
from genledger.config import load_settings
from genledger.core.adjustments import Adjustment
from genledger.core.generation import Generation, ProviderAttempt
from genledger.core.ids import new_generation_id
from genledger.core.keys import KeyRecord
from genledger.gateway.overview import OverviewReader
from genledger.gateway.services import Services
from tests.inprocess.stores import (
    MemoryGenerationStore,
    MemoryKeyStore,
    memory_services,
)
from tests.ledger.records import hold

BASE = "http://gateway"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Dash:
    http: httpx.AsyncClient
    services: Services
    keys: MemoryKeyStore
    generations: MemoryGenerationStore
    admin: str
    alice: str
    bob: str
    alice_key: KeyRecord
    bob_key: KeyRecord

    async def sign_in(self, secret: str) -> httpx.Response:
        form = await self.http.get("/dashboard/sign-in")
        token = CSRF.search(form.text)
        assert token is not None
        return await self.http.post("/dashboard/sign-in", data={"csrf": token.group(1), "key": secret})

    async def csrf(self, path: str = "/dashboard/overview") -> str:
        page = await self.http.get(path)
        token = CSRF.search(page.text)
        assert token is not None, page.text
        return token.group(1)


def generation(key: KeyRecord, minutes_ago: float = 1, **fields: object) -> Generation:
    values: dict[str, object] = {
        "id": new_generation_id(),
        "key_id": key.id,
        "created_at": datetime.now(UTC) - timedelta(minutes=minutes_ago),
        "model": "genledger/demo",
        "provider_name": "genledger-demo",
        "total_cost_pico": 3_000_000,
        "charge_pico": 3_000_000,
        "tokens_prompt": 4,
        "tokens_completion": 1,
        "latency_ms": 12.0,
        "finish_reason": "stop",
        "provider_responses": (ProviderAttempt(200, "genledger-demo", 11.0, "up-1"),),
        **fields,
    }
    return Generation(**values)  # type: ignore[arg-type]


@pytest.fixture
async def dash() -> AsyncIterator[Dash]:
    settings = load_settings(None)
    keys = MemoryKeyStore()
    generations = MemoryGenerationStore(keys)
    services = memory_services(settings, keys, generations)
    _, admin = await keys.create("admin", management=True)
    alice_key, alice = await keys.create("alice", limit_pico=10**12)
    bob_key, bob = await keys.create("bob")
    transport = httpx.ASGITransport(app=create_app(settings, services))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield Dash(http, services, keys, generations, admin, alice, bob, alice_key, bob_key)
    await services.aclose()


async def test_pages_need_a_session_and_send_the_browser_to_sign_in(dash: Dash):
    for path in ("/dashboard/", "/dashboard/overview", "/dashboard/generations", "/dashboard/keys"):
        response = await dash.http.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/dashboard/sign-in", path
    landed = await dash.http.get("/dashboard", follow_redirects=True)
    assert landed.status_code == 200 and landed.url.path == "/dashboard/sign-in"
    assert re.fullmatch(r"app;dur=[0-9.]+", landed.headers["server-timing"])


async def test_sign_in_sets_a_signed_http_only_strict_cookie_without_the_key(dash: Dash):
    response = await dash.sign_in(dash.alice)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/overview"
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert dash.alice not in cookie
    payload = unsign(dash.services.dashboard_secret, SESSION_COOKIE, dash.http.cookies[SESSION_COOKIE])
    assert payload is not None and payload["k"] == dash.alice_key.hash
    page = await dash.http.get("/dashboard/overview")
    assert page.status_code == 200 and "alice" in page.text and dash.alice not in page.text


async def test_sign_in_needs_the_form_token_and_a_working_key(dash: Dash):
    refused = await dash.http.post("/dashboard/sign-in", data={"csrf": "forged", "key": dash.alice})
    assert refused.status_code == 403 and SESSION_COOKIE not in refused.headers.get("set-cookie", "")
    assert (await dash.sign_in("sk-gl-not-a-key")).status_code == 401
    assert (await dash.sign_in("")).status_code == 400
    await dash.keys.set_disabled("bob")
    dash.services.auth.forget(dash.bob_key.hash)
    disabled = await dash.sign_in(dash.bob)
    assert disabled.status_code == 401 and "disabled" in disabled.text
    assert dash.bob not in disabled.text


@pytest.mark.parametrize("value", ["garbage", "a.b", "x" * 10])
async def test_a_forged_or_tampered_cookie_is_no_session(dash: Dash, value: str):
    dash.http.cookies.set(SESSION_COOKIE, value, domain="gateway", path="/dashboard")
    assert (await dash.http.get("/dashboard/overview")).status_code == 303
    other = sign(b"another secret" * 3, SESSION_COOKIE, {"k": dash.alice_key.hash, "c": "t", "e": 2**40})
    dash.http.cookies.set(SESSION_COOKIE, other, domain="gateway", path="/dashboard")
    assert (await dash.http.get("/dashboard/overview")).status_code == 303


def test_a_signed_payload_expires_and_is_bound_to_its_purpose():
    secret = b"s" * 32
    text = sign(secret, "one", {"k": "h", "e": 100})
    assert unsign(secret, "one", text, now=99) == {"k": "h", "e": 100}
    assert unsign(secret, "one", text, now=101) is None
    assert unsign(secret, "two", text, now=99) is None
    assert unsign(secret, "one", sign(secret, "one", {"k": "h"}), now=0) is None  # no expiry
    assert unsign(secret, "one", "!!!.###", now=0) is None


async def test_a_disabled_key_loses_its_session(dash: Dash):
    await dash.sign_in(dash.alice)
    await dash.keys.set_disabled("alice")
    dash.services.auth.forget(dash.alice_key.hash)
    assert (await dash.http.get("/dashboard/overview")).status_code == 303


async def test_every_page_has_a_strict_csp_and_no_inline_script(dash: Dash):
    await dash.generations.record(generation(dash.alice_key))
    await dash.sign_in(dash.admin)
    for path in ("/dashboard/sign-in", "/dashboard/overview", "/dashboard/generations", "/dashboard/keys"):
        response = await dash.http.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", response.text, re.S)
        assert scripts and all('src="/dashboard/static/' in attrs and not body for attrs, body in scripts)
        assert "style=" not in response.text
        assert re.search(r"<[^>]*\son[a-z]+\s*=", response.text) is None  # no inline handlers
    static = await dash.http.get("/dashboard/static/vendor/uPlot.iife.min.js")
    assert static.status_code == 200 and "uPlot" in static.text and "cache-control" not in static.headers


async def test_user_strings_are_escaped(dash: Dash):
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    await dash.generations.record(
        generation(
            dash.alice_key,
            model=hostile,
            external_user=hostile,
            session_id=hostile,
            metadata={hostile: hostile},
        )
    )
    await dash.sign_in(dash.admin)
    pages = [await dash.http.get(p) for p in ("/dashboard/overview", "/dashboard/generations")]
    listed = pages[1]
    detail_id = re.search(r'href="/dashboard/generations/(gen-[^"]+)"', listed.text)
    assert detail_id is not None
    pages.append(await dash.http.get(f"/dashboard/generations/{detail_id.group(1)}"))
    for response in pages:
        assert "<script>alert" not in response.text and "<img src=x" not in response.text
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in response.text


async def test_an_ordinary_key_sees_only_its_own_generations(dash: Dash):
    mine = generation(dash.alice_key, model="acme/mine")
    theirs = generation(dash.bob_key, model="acme/theirs")
    for g in (mine, theirs):
        await dash.generations.record(g)
    await dash.sign_in(dash.alice)
    listed = await dash.http.get("/dashboard/generations")
    assert "acme/mine" in listed.text and "acme/theirs" not in listed.text
    overview = await dash.http.get("/dashboard/overview?window=7d")
    assert "acme/mine" in overview.text and "acme/theirs" not in overview.text
    assert "Top keys" not in overview.text
    assert (await dash.http.get(f"/dashboard/generations/{theirs.id}")).status_code == 404
    assert (await dash.http.get(f"/dashboard/generations/{mine.id}")).status_code == 200
    other = await dash.http.get(f"/dashboard/generations?api_key_hash={dash.bob_key.hash}")
    assert other.status_code == 403
    own = await dash.http.get("/dashboard/keys")
    assert own.status_code == 200 and "Your key" in own.text and "bob" not in own.text
    assert (await dash.http.get(f"/dashboard/keys/{dash.bob_key.hash}")).status_code == 403


async def test_the_management_key_sees_every_key_and_the_detail_names_the_owner(dash: Dash):
    theirs = generation(
        dash.bob_key,
        model="genledger/demo",
        tokens_prompt=10,
        tokens_completion=4,
        native_tokens_cached=6,
        native_tokens_reasoning=2,
    )
    await dash.generations.record(theirs)
    await dash.sign_in(dash.admin)
    detail = await dash.http.get(f"/dashboard/generations/{theirs.id}")
    assert detail.status_code == 200 and "key <b>bob</b>" in detail.text
    # The demo model's prices: 0.5 prompt, 1.5 completion, 0.25 cached, per million tokens.
    assert (
        "$0.000002<" in detail.text
        and "$0.0000015<" in detail.text
        and "$0.000003<" in detail.text
        and "Reasoning" in detail.text
    )
    assert "today's prices" in detail.text  # the record says 3_000_000 pico, not the parts' sum
    overview = await dash.http.get("/dashboard/overview?window=30d")
    assert "Top keys" in overview.text and ">bob<" in overview.text


async def test_filters_from_the_form_become_the_list_apis_query_string(dash: Dash):
    await dash.sign_in(dash.admin)
    response = await dash.http.get(
        "/dashboard/generations",
        params={"model": "acme/x", "provider_name": "", "metadata_key": "team", "metadata_value": "red"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/generations?model=acme%2Fx&metadata%5Bteam%5D=red"
    # The form's metadata pair replaces the same key's (kept in a hidden field), not repeats it.
    form = {"metadata[team]": "red", "metadata_key": "team", "metadata_value": "blue"}
    again = await dash.http.get("/dashboard/generations", params=form)
    assert again.headers["location"] == "/dashboard/generations?metadata%5Bteam%5D=blue"
    cleared = await dash.http.get("/dashboard/generations", params={"model": ""})
    assert cleared.headers["location"] == "/dashboard/generations"
    half = await dash.http.get("/dashboard/generations", params={"metadata_key": "team"})
    assert half.status_code == 400 and "metadata_value" in half.text
    half = await dash.http.get("/dashboard/generations", params={"metadata_value": "red"})
    assert half.status_code == 400 and "metadata_key" in half.text
    bad = await dash.http.get("/dashboard/generations", params={"streamed": "perhaps"})
    assert bad.status_code == 400 and "streamed" in bad.text and "<h1>Error 400</h1>" in bad.text
    unknown = await dash.http.get("/dashboard/generations", params={"colour": "red"})
    assert unknown.status_code == 400 and "colour" in unknown.text
    forged = await dash.http.get("/dashboard/generations", params={"cursor": "WzEsMl0"})  # [1, 2]
    assert forged.status_code == 400 and "cursor" in forged.text and "<h1>Error 400</h1>" in forged.text
    window = await dash.http.get("/dashboard/overview", params={"window": "1y"})
    assert window.status_code == 400 and "window" in window.text


def _field(page: str, name: str) -> str:
    found = re.search(rf'<input id="f-{name}" name="{name}" type="(\w+)" value="([^"]*)"', page)
    assert found is not None, name
    return f"{found.group(1)}:{found.group(2)}"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("2026-11-28", "2026-11-28T00:00:00Z"),
        ("2026-11-28T11:09:30Z", "2026-11-28T11:09:30Z"),
        ("2026-11-28T11:09:30.123456+02:00", "2026-11-28T09:09:30.123456Z"),
        ("2026-11-28T11:09", "2026-11-28T11:09:00Z"),  # no offset: UTC, as the label says
    ],
)
async def test_the_form_shows_a_time_filter_as_the_same_instant_in_utc(dash: Dash, given: str, shown: str):
    await dash.sign_in(dash.admin)
    page = await dash.http.get(
        "/dashboard/generations", params={"created_after": given, "created_before": given}
    )
    assert page.status_code == 200
    assert _field(page.text, "created_after") == _field(page.text, "created_before") == f"text:{shown}"
    padded = await dash.http.get(
        "/dashboard/generations", params={"created_after": f" {given} ", "model": ""}
    )
    assert padded.status_code == 303
    assert padded.headers["location"] == f"/dashboard/generations?{urlencode({'created_after': given})}"


async def test_the_form_shows_every_filter_it_was_given(dash: Dash):
    await dash.sign_in(dash.alice)
    page = await dash.http.get(
        "/dashboard/generations",
        params={
            "min_cost": "0.0000010",
            "streamed": "1",
            "cancelled": "0",
            "api_key_hash": dash.alice_key.hash,
        },
    )
    assert page.status_code == 200
    assert _field(page.text, "min_cost") == "text:0.000001"
    assert '<option value="true" selected>yes</option>' in page.text.split('id="f-streamed"')[1]
    assert '<option value="false" selected>no</option>' in page.text.split('id="f-cancelled"')[1]
    assert f'<input type="hidden" name="api_key_hash" value="{dash.alice_key.hash}">' in page.text


async def test_filters_and_paging_walk_every_match_once(dash: Dash):
    for i in range(7):
        await dash.generations.record(
            generation(dash.alice_key, minutes_ago=i, metadata={"team": "red" if i % 2 else "blue"})
        )
    await dash.sign_in(dash.admin)
    seen: list[str] = []
    url: str | None = "/dashboard/generations?metadata%5Bteam%5D=red&limit=2"
    while url is not None:
        page = await dash.http.get(url)
        assert page.status_code == 200
        seen += re.findall(r'href="/dashboard/generations/(gen-[^"]+)"', page.text)
        found = re.search(r'href="([^"]+)" rel="next"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == 3 and len(set(seen)) == 3


async def test_the_export_downloads_the_current_filter(dash: Dash):
    await dash.generations.record(generation(dash.alice_key, model="acme/a"))
    await dash.generations.record(generation(dash.alice_key, model="acme/b"))
    await dash.sign_in(dash.admin)
    listed = await dash.http.get("/dashboard/generations?model=acme%2Fa")
    link = re.search(r'href="(/dashboard/generations/export\?[^"]*format=csv)"', listed.text)
    assert link is not None
    csv = await dash.http.get(link.group(1).replace("&amp;", "&"))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "acme/a" in csv.text and "acme/b" not in csv.text
    ndjson = await dash.http.get("/dashboard/generations/export?format=ndjson")
    assert len(ndjson.text.splitlines()) == 2


async def test_a_form_with_a_nul_character_is_refused_and_nothing_is_created(dash: Dash):
    await dash.sign_in(dash.admin)
    token = await dash.csrf("/dashboard/keys")
    refused = await dash.http.post("/dashboard/keys", data={"csrf": token, "name": "nu\x00l"})
    assert refused.status_code == 400
    assert "The form contains a NUL character (%00)" in refused.text
    assert await dash.keys.find_by_name("nu\x00l") is None and await dash.keys.find_by_name("nul") is None


async def test_keys_are_created_once_disabled_and_limited_with_the_sessions_csrf_token(dash: Dash):
    await dash.sign_in(dash.admin)
    token = await dash.csrf("/dashboard/keys")
    created = await dash.http.post(
        "/dashboard/keys",
        data={
            "csrf": token,
            "name": "carol",
            "limit": "5",
            "limit_reset": "daily",
            "requests_per_minute": "7",
        },
    )
    assert created.status_code == 201
    secret = re.search(r'<output id="new-secret" class="secret">([^<]+)</output>', created.text)
    assert secret is not None
    carol = await dash.keys.find_by_name("carol")
    assert carol is not None and carol.limit_pico == 5 * 10**12 and carol.requests_per_minute == 7
    assert (await dash.services.auth.authenticate(f"Bearer {secret.group(1)}")).name == "carol"
    listing = await dash.http.get("/dashboard/keys")
    assert secret.group(1) not in listing.text and "carol" in listing.text
    assert (await dash.http.get(f"/dashboard/keys/{carol.hash}")).status_code == 200

    forged = await dash.http.post(f"/dashboard/keys/{carol.hash}", data={"csrf": "x", "action": "disable"})
    assert forged.status_code == 403
    missing = await dash.http.post("/dashboard/keys", data={"name": "dave"})
    assert missing.status_code == 403 and await dash.keys.find_by_name("dave") is None

    disabled = await dash.http.post(
        f"/dashboard/keys/{carol.hash}", data={"csrf": token, "action": "disable"}
    )
    assert disabled.status_code == 303 and disabled.headers["location"] == f"/dashboard/keys/{carol.hash}"
    assert (await dash.keys.find_by_name("carol")).disabled  # type: ignore[union-attr]
    limited = await dash.http.post(
        f"/dashboard/keys/{carol.hash}",
        data={"csrf": token, "action": "limit", "limit": "", "limit_reset": ""},
    )
    assert limited.status_code == 303
    assert (await dash.keys.find_by_name("carol")).limit_pico is None  # type: ignore[union-attr]
    rates = await dash.http.post(
        f"/dashboard/keys/{carol.hash}",
        data={"csrf": token, "action": "rate_limits", "requests_per_minute": "", "tokens_per_minute": "900"},
    )
    assert rates.status_code == 303
    carol = await dash.keys.find_by_name("carol")
    assert carol is not None and carol.tokens_per_minute == 900 and carol.requests_per_minute is None
    back = await dash.http.post(
        f"/dashboard/keys/{carol.hash}", data={"csrf": token, "action": "enable", "back": "list"}
    )
    assert back.headers["location"] == "/dashboard/keys"


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"name": "alice"}, "name"),
        ({"name": "eve", "limit": "-1"}, "limit"),
        ({"name": "eve", "limit_reset": "hourly"}, "limit_reset"),
        ({"name": "eve", "requests_per_minute": "many"}, "requests_per_minute"),
    ],
)
async def test_a_bad_key_form_is_a_400_naming_the_field(dash: Dash, data: dict[str, str], param: str):
    await dash.sign_in(dash.admin)
    token = await dash.csrf("/dashboard/keys")
    response = await dash.http.post("/dashboard/keys", data={"csrf": token, **data})
    assert response.status_code == 400 and param in response.text


async def test_an_unknown_key_action_is_a_400(dash: Dash):
    await dash.sign_in(dash.admin)
    token = await dash.csrf("/dashboard/keys")
    response = await dash.http.post(
        f"/dashboard/keys/{dash.bob_key.hash}", data={"csrf": token, "action": "x"}
    )
    assert response.status_code == 400 and "action" in response.text


async def test_an_ordinary_key_cannot_use_the_key_forms(dash: Dash):
    await dash.sign_in(dash.alice)
    token = await dash.csrf()
    created = await dash.http.post("/dashboard/keys", data={"csrf": token, "name": "mallory"})
    assert created.status_code == 403 and await dash.keys.find_by_name("mallory") is None
    changed = await dash.http.post(
        f"/dashboard/keys/{dash.bob_key.hash}", data={"csrf": token, "action": "disable"}
    )
    assert changed.status_code == 403


async def test_sign_out_needs_the_token_and_ends_the_session(dash: Dash):
    await dash.sign_in(dash.alice)
    assert (await dash.http.post("/dashboard/sign-out", data={"csrf": "nope"})).status_code == 403
    token = await dash.csrf()
    out = await dash.http.post("/dashboard/sign-out", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/sign-in"
    assert SESSION_COOKIE not in dash.http.cookies
    assert (await dash.http.get("/dashboard/overview")).status_code == 303


async def test_the_overview_sums_the_window_and_notes_reservations(dash: Dash):
    await dash.generations.record(generation(dash.alice_key, minutes_ago=30))
    await dash.generations.record(generation(dash.alice_key, minutes_ago=60 * 30, finish_reason="error"))
    assert await dash.keys.reserve(dash.alice_key.id, 5 * 10**11, None, hold()) is None
    await dash.sign_in(dash.admin)
    day = await dash.http.get("/dashboard/overview")
    assert re.search(r'id="total-requests">1<', day.text)
    assert re.search(r'id="reserved">\$0\.50 <small>\(1 key\)', day.text)
    week = await dash.http.get("/dashboard/overview?window=7d")
    assert re.search(r'id="total-requests">2<', week.text) and "50.0%" in week.text
    await dash.sign_in(dash.alice)
    own = await dash.http.get("/dashboard/overview")
    assert re.search(r'id="reserved">\$0\.50', own.text)


async def test_a_nul_character_in_a_form_is_refused_with_400(dash: Dash):
    await dash.sign_in(dash.admin)
    token = await dash.csrf("/dashboard/keys")
    refused = await dash.http.post("/dashboard/keys", data={"csrf": token, "name": "nul\x00name"})
    assert refused.status_code == 400 and "NUL" in refused.text
    assert await dash.keys.find_by_name("nul\x00name") is None


async def test_the_detail_shows_adjustments_the_adjusted_cost_and_upstream_drift(dash: Dash):
    drifting = generation(dash.alice_key, upstream_cost_pico=3_500_000)
    agreeing = generation(dash.alice_key, upstream_cost_pico=3_000_000)
    await dash.generations.record(drifting)
    await dash.generations.record(agreeing)
    await dash.generations.adjust(
        [
            Adjustment(
                generation_id=drifting.id,
                key_id=dash.alice_key.id,
                model=drifting.model,
                generation_created_at=drifting.created_at,
                amount_pico=-1_000_000,
                from_version=1,
                to_version=2,
                reason="a mistyped <b>price</b>",
                created_at=datetime.now(UTC),
            )
        ]
    )
    await dash.sign_in(dash.alice)
    detail = await dash.http.get(f"/dashboard/generations/{drifting.id}")
    assert re.search(r'id="adjusted-cost">\$0\.000002<', detail.text)
    assert "1 → 2" in detail.text and "a mistyped &lt;b&gt;price&lt;/b&gt;" in detail.text
    assert re.search(r'id="upstream-cost">\$0\.0000035<', detail.text)
    assert 'class="warning" id="drift"' in detail.text and "Drift:" in detail.text
    # Every field: money as exact USD, never the JSON float's exponent (3e-06).
    assert "<dt>total_cost</dt><dd>0.000003</dd>" in detail.text
    assert "<dt>upstream_inference_cost</dt><dd>0.0000035</dd>" in detail.text
    assert "e-0" not in detail.text
    calm = await dash.http.get(f"/dashboard/generations/{agreeing.id}")
    assert "agrees with ours" in calm.text and "adjusted-cost" not in calm.text
    overview = await dash.http.get("/dashboard/overview")
    assert re.search(r'id="total-spend">\$0\.000005<', overview.text)  # 2 x 3 minus 1 micro-dollar
    listed = await dash.http.get("/dashboard/generations?drifted=true")
    assert re.findall(r'href="/dashboard/generations/(gen-[^"]+)"', listed.text) == [drifting.id]


async def test_the_overview_says_when_percentiles_users_and_sessions_are_a_sample(dash: Dash):
    dash.services.overview = OverviewReader(dash.keys, dash.generations, sample=2)
    for i in range(3):
        await dash.generations.record(generation(dash.alice_key, minutes_ago=i + 1, external_user=f"u{i}"))
    await dash.sign_in(dash.admin)
    page = await dash.http.get("/dashboard/overview")
    assert re.search(r'id="total-requests">3<', page.text)
    assert 'id="sample-note"' in page.text and "newest 2 of the window's 3" in page.text
    assert ">u0<" in page.text and ">u2<" not in page.text  # the oldest is outside the sample


async def test_a_key_past_its_end_shows_as_expired(dash: Dash):
    from datetime import UTC, datetime, timedelta

    await dash.keys.create("ended", expires_at=datetime.now(UTC) - timedelta(hours=1))
    await dash.keys.create("later", expires_at=datetime.now(UTC) + timedelta(days=1))
    await dash.sign_in(dash.admin)
    listing = (await dash.http.get("/dashboard/keys")).text
    states = dict(re.findall(r'<tr data-key="([^"]+)">.*?<td class="state">([^<]+)</td>', listing, re.S))
    assert (states["ended"], states["later"]) == ("expired", "enabled")
    ended = await dash.keys.find_by_name("ended")
    assert ended is not None
    page = (await dash.http.get(f"/dashboard/keys/{ended.hash}")).text
    assert '<dd class="state">expired</dd>' in page


async def test_a_path_no_page_has_is_a_404_page(dash: Dash):
    await dash.sign_in(dash.admin)
    for path in ("/dashboard/nope", "/dashboard/keys/x/y"):
        missing = await dash.http.get(path)
        assert missing.status_code == 404 and "<h1>Error 404</h1>" in missing.text, path
        assert "content-security-policy" in missing.headers
    asset = await dash.http.get("/dashboard/static/nope.js")
    assert asset.status_code == 404 and "content-security-policy" in asset.headers
    assert (await dash.http.get("/dashboard/static/dashboard.js")).status_code == 200


async def test_a_query_parameter_no_page_takes_is_a_400_page_naming_it(dash: Dash):
    recorded = generation(dash.alice_key)
    await dash.generations.record(recorded)
    await dash.sign_in(dash.admin)
    for path in (
        "/dashboard/",
        "/dashboard/overview",
        "/dashboard/keys",
        f"/dashboard/keys/{dash.alice_key.hash}",
        f"/dashboard/generations/{recorded.id}",
    ):
        refused = await dash.http.get(path, params={"colour": "red"})
        assert refused.status_code == 400 and "<h1>Error 400</h1>" in refused.text, path
        assert "Unknown query parameter &#39;colour&#39;" in refused.text, path
    taken = await dash.http.get("/dashboard/overview", params={"window": "7d"})
    assert taken.status_code == 200
