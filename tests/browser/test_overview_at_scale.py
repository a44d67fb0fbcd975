"""The overview of a ledger with a month of realistic traffic, in Chromium: its totals equal the
records' (read through the activity rollup by a real gateway), and its screenshot is the one in
the README (``docs/dashboard-overview.png``, copied from ``test-artifacts/dashboard/``)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from genledger.core.generation import Generation, ProviderAttempt
from genledger.core.ids import new_generation_id
from genledger.gateway.overview import SAMPLE
from genledger.ledger import Ledger
from tests.browser.conftest import MODEL, OTHER_MODEL, Browser, Served, serve
from tests.gateway import run_with_ledger

GENERATIONS = 3000
DAYS = 30
# Model, provider, USD per million prompt and completion tokens, share of the traffic.
MODELS = (
    (MODEL, "FakeAI", 0.15, 0.60, 0.45),
    (OTHER_MODEL, "FakeAI", 1.0, 2.0, 0.25),
    ("acme/reasoner", "Acme", 3.0, 15.0, 0.15),
    ("acme/embed-small", "Acme", 0.02, 0.0, 0.15),
)
USERS = [f"user-{name}" for name in ("ana", "ben", "chidi", "dara", "eun", "farah", "gus", "hana")]
TEAMS = ("search", "support", "ads", "research")
NOW = datetime.now(UTC)
KEY_WEIGHTS = (2, 1, 6, 3)  # alice, bob, search-service, batch-jobs


def _generations(key_ids: list[str]) -> list[Generation]:
    """A month of traffic: busier in working hours and on weekdays, one key doing most of it."""
    rng = random.Random(2026)
    found = []
    while len(found) < GENERATIONS:
        at = NOW - timedelta(minutes=5 + rng.random() * DAYS * 24 * 60)
        weekday = at.weekday() < 5
        daylight = 0.5 + 0.5 * math.sin((at.hour - 8) / 24 * 2 * math.pi)
        if rng.random() > (0.25 + 0.75 * daylight) * (1.0 if weekday else 0.4):
            continue
        model, provider, prompt_price, completion_price = rng.choices(
            [m[:4] for m in MODELS], weights=[m[4] for m in MODELS]
        )[0]
        prompt, completion = rng.randrange(200, 6000), rng.randrange(20, 1500)
        error = rng.random() < 0.03
        cost = round((prompt * prompt_price + completion * completion_price) * 10**6) if not error else 0
        latency = rng.lognormvariate(6.5 if "reasoner" not in model else 8.0, 0.5)
        found.append(
            Generation(
                id=new_generation_id(),
                key_id=rng.choices(key_ids, weights=KEY_WEIGHTS[: len(key_ids)])[0],
                created_at=at,
                model=model,
                provider_name=provider,
                total_cost_pico=cost,
                charge_pico=cost,
                tokens_prompt=prompt,
                tokens_completion=0 if error else completion,
                latency_ms=latency,
                finish_reason="error" if error else "stop",
                streamed=rng.random() < 0.5,
                external_user=rng.choice(USERS) if rng.random() < 0.7 else None,
                session_id=f"session-{rng.randrange(40)}" if rng.random() < 0.5 else None,
                metadata={"team": rng.choice(TEAMS)},
                provider_responses=(ProviderAttempt(500 if error else 200, provider, latency, None),),
            )
        )
    return found


SEEDED: list[Generation] = []


def _seed(database_url: str) -> None:
    async def seed(ledger: Ledger) -> None:
        for name in ("search-service", "batch-jobs"):
            await ledger.keys.create(name)
        keys = [k for k in await ledger.keys.list() if not k.is_management]
        SEEDED.extend(_generations([k.id for k in keys]))
        for generation in SEEDED:
            await ledger.generations.record(generation)

    run_with_ledger(database_url, seed)


@pytest.fixture(scope="module")
def served(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("dashboard-at-scale"), _seed) as found:
        yield found


def test_the_overview_of_a_busy_month_counts_every_record(browser: Browser):
    browser.sign_in(browser.served.admin)
    for window, span in (("7d", timedelta(days=7)), ("30d", timedelta(days=30))):
        browser.goto(f"/dashboard/overview?window={window}")
        page = browser.page
        shown = int(page.locator("#total-requests").inner_text())
        # The page's window ends when it was rendered, a moment after NOW.
        inside = [g for g in SEEDED if g.created_at >= datetime.now(UTC) - span]
        assert abs(shown - len(inside)) <= 2, (window, shown, len(inside))
        assert page.locator("#spend-chart .uplot").count() == 1
        # Percentiles, users and sessions: from the newest SAMPLE, and the page says so past it.
        assert page.locator("#sample-note").count() == (1 if len(inside) > SAMPLE else 0)
        if window == "7d":
            browser.screenshot("overview")
