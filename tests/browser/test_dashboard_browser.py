"""The dashboard in Chromium: sign-in with each kind of key, generations made by the ``openai``
client, filters, the detail view, paging, keys, sign-out, and hostile strings shown as text."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

import openai
import pytest

from genledger.api.list_wire import parse_list_query
from genledger.core.stores import GenerationFilter
from tests.browser.conftest import MODEL, OTHER_MODEL, Browser, Served

HOSTILE_SCRIPT = "<script>window.__pwned = 1</script>"
HOSTILE_IMG = '"><img src=x onerror="window.__pwned = 2">'
PAGED = 250


def chat(client: openai.OpenAI, model: str = MODEL, **extra: object) -> str:
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hello there"}],
        max_tokens=5,
        **extra,  # type: ignore[arg-type]
    )
    return completion.id


def ids_on(browser: Browser) -> list[str]:
    links = browser.page.locator("a.generation-link")
    return [
        href.rsplit("/", 1)[1] for href in links.evaluate_all("els => els.map(e => e.getAttribute('href'))")
    ]


@pytest.fixture(scope="module")
def made(served: Served) -> dict[str, list[str]]:
    """Generations made through the gateway by the official client, for two keys."""
    alice, bob = served.client(served.alice), served.client(served.bob)
    return {
        "red": [chat(alice, user="ana", metadata={"team": "red"}) for _ in range(3)],
        "blue": [chat(alice, OTHER_MODEL, metadata={"team": "blue"}) for _ in range(2)],
        "bob": [chat(bob, extra_headers={"x-session-id": "bob-session"})],
    }


def test_an_ordinary_key_signs_in_and_sees_only_its_own_generations(
    browser: Browser, made: dict[str, list[str]]
):
    browser.sign_in(browser.served.alice)
    page = browser.page
    assert page.locator("#total-requests").inner_text() == "5"
    assert page.locator("#spend-chart .uplot").count() == 1  # uPlot drew under the CSP
    assert page.get_by_role("heading", name="Top keys by spend").count() == 0
    browser.source_has_no_secret()
    browser.goto("/dashboard/generations")
    shown = ids_on(browser)
    assert sorted(shown) == sorted(made["red"] + made["blue"])
    browser.goto(f"/dashboard/generations/{made['bob'][0]}")
    assert page.get_by_role("heading", name="Error 404").count() == 1
    browser.goto("/dashboard/keys")
    assert page.get_by_role("heading", name=re.compile("Your key")).count() == 1
    browser.source_has_no_secret()


def test_a_management_key_filters_by_model_and_metadata_and_opens_a_detail(
    browser: Browser, made: dict[str, list[str]]
):
    browser.sign_in(browser.served.admin)
    page = browser.page
    assert int(page.locator("#total-requests").inner_text()) >= 6
    assert page.get_by_role("heading", name="Top keys by spend").count() == 1
    browser.screenshot("overview")
    browser.goto("/dashboard/generations")
    assert set(made["bob"] + made["red"] + made["blue"]) <= set(ids_on(browser))

    page.get_by_label("Model").fill(OTHER_MODEL)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"model=acme%2Fother-chat"))
    assert sorted(ids_on(browser)) == sorted(made["blue"])

    page.get_by_label("Model").fill("")
    page.get_by_label("Metadata key").fill("team")
    page.get_by_label("Metadata value").fill("red")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"metadata%5Bteam%5D=red"))
    assert "model=" not in page.url
    assert sorted(ids_on(browser)) == sorted(made["red"])
    # The view can be shared: the same URL in a fresh page shows the same rows.
    shared = page.url
    browser.page.goto(shared)
    assert sorted(ids_on(browser)) == sorted(made["red"])

    page.locator("a.generation-link").first.click()
    page.wait_for_url(re.compile(r"/dashboard/generations/gen-"))
    assert page.get_by_role("heading", name="Cost").count() == 1
    assert page.locator("table.metadata td", has_text="red").count() == 1
    assert page.get_by_text("FakeAI").count() >= 1  # provider_responses
    fields = page.locator("dl.fields dt").all_inner_texts()
    assert {"id", "model", "usage", "provider_responses", "tokens_prompt", "metadata"} <= set(fields)
    browser.screenshot("detail")
    browser.source_has_no_secret()


def test_every_filter_in_the_url_survives_a_change_made_in_the_form(
    browser: Browser, made: dict[str, list[str]]
):
    """The form shows each filter of the URL as the list API reads it (times as the same instant
    in UTC, whatever ISO 8601 spelled them), so submitting it after changing one keeps the rest."""
    browser.sign_in(browser.served.admin)
    page = browser.page
    warnings: list[str] = []
    page.on("console", lambda message: warnings.append(message.text) if message.type == "warning" else None)
    browser.goto("/dashboard/keys")
    alice = page.get_by_role("link", name="alice", exact=True).get_attribute("href").rsplit("/", 1)[1]
    given = {
        "created_after": "2026-01-01T10:09:30.123456+02:00",
        "created_before": "2999-12-31",
        "api_key_hash": alice,
        "metadata[team]": "blue",
        "min_cost": "0.000000000001",
        "streamed": "0",
        "cancelled": "false",
        "drifted": "0",
        "limit": "50",
    }
    browser.goto(f"/dashboard/generations?{urlencode(given)}")
    assert sorted(ids_on(browser)) == sorted(made["blue"])
    assert page.get_by_label("From (UTC)").input_value() == "2026-01-01T08:09:30.123456Z"
    assert page.get_by_label("Before (UTC)").input_value() == "2999-12-31T00:00:00Z"
    assert page.get_by_label("Min cost (USD)").input_value() == "0.000000000001"

    page.get_by_label("Model").fill(OTHER_MODEL)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"model=acme%2Fother-chat"))
    sent = parse_qsl(urlsplit(page.url).query)
    assert len(sent) == len(given) + 1
    assert where(dict(sent)) == where({**given, "model": OTHER_MODEL})
    assert sorted(ids_on(browser)) == sorted(made["blue"])
    assert not [text for text in warnings if "does not conform" in text], warnings


def where(query: dict[str, str]) -> tuple[GenerationFilter, str | None, int]:
    parsed = parse_list_query(query, list(query))
    return parsed.where, parsed.api_key_hash, parsed.limit


def test_paging_through_250_records(browser: Browser, served: Served):
    client = served.client(served.alice)
    made = {chat(client, extra_headers={"x-session-id": "paging"}) for _ in range(PAGED)}
    browser.sign_in(served.admin)
    browser.goto("/dashboard/generations?session_id=paging")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen += ids_on(browser)
        following = browser.page.locator("#next-page")
        if following.count() == 0:
            break
        following.click()
        browser.page.wait_for_load_state()
    assert pages == 3 and len(seen) == PAGED and set(seen) == made


def test_create_a_key_see_its_secret_once_disable_it_and_sign_out(browser: Browser, served: Served):
    browser.sign_in(served.admin)
    page = browser.page
    browser.goto("/dashboard/keys")
    page.get_by_label("Name", exact=True).fill("carol")
    page.get_by_label("Limit (USD, empty: none)").fill("2.5")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret").inner_text().strip()
    assert secret.startswith("sk-") and len(secret) > 20
    chat(served.client(secret))  # the new key works at once

    browser.goto("/dashboard/keys")
    assert secret not in page.content()  # shown once
    row = page.locator("tr[data-key='carol']")
    assert row.locator(".state").inner_text() == "enabled"
    assert "$2.50" in row.inner_text()
    row.get_by_role("button", name="Disable carol").click()
    page.wait_for_url("**/dashboard/keys")
    assert page.locator("tr[data-key='carol'] .state").inner_text() == "disabled"
    with pytest.raises(openai.AuthenticationError):
        chat(served.client(secret))

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/dashboard/sign-in")
    browser.goto("/dashboard/overview")
    assert page.url.endswith("/dashboard/sign-in")


def test_hostile_metadata_user_and_session_show_as_text(browser: Browser, served: Served):
    hostile = f"{HOSTILE_SCRIPT}{HOSTILE_IMG}"
    generation_id = chat(
        served.client(served.bob),
        user=hostile,
        metadata={"note": hostile, HOSTILE_IMG: HOSTILE_SCRIPT},
        extra_headers={"x-session-id": hostile},
    )
    browser.sign_in(served.admin)
    page = browser.page
    for path in (
        "/dashboard/overview",
        "/dashboard/generations",
        f"/dashboard/generations/{generation_id}",
    ):
        browser.goto(path)
        assert page.evaluate("window.__pwned === undefined")
        assert page.locator("img").count() == 0
        assert page.get_by_text(hostile, exact=True).count() >= 1, path
    assert page.locator("table.metadata td", has_text=HOSTILE_IMG).count() >= 1


def test_no_key_reaches_the_gateways_log(served: Served):
    log = served.log.read_text()
    assert "dashboard: http://" in log  # genledger serve printed where the dashboard is
    for secret in served.secrets:
        assert secret not in log


def test_chart_money_is_in_decimals_never_in_exponent_form(browser: Browser, made: dict[str, list[str]]):
    """A request's spend is often under a millionth of a dollar: JavaScript alone writes 5e-7."""
    browser.sign_in(browser.served.alice)
    page = browser.page
    assert page.locator("#spend-chart .uplot").count() == 1
    shown = page.evaluate(
        "[dollars(5e-7, 6), dollars(0.000123456789, 6), dollars(1234.5678, 6), dollars(0, 2)]"
    )
    assert shown == ["$0.0000005", "$0.000123457", "$1234.57", "$0"]
    values = page.locator("#spend-chart .u-legend .u-value").all_inner_texts()
    assert values and not any("e-" in value for value in values), values
