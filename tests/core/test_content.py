"""Content policy, stored content's encoding, limit periods' ends, and their wire forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from genledger.api.content_wire import content_json, parse_feedback
from genledger.api.generation_wire import feedback_json
from genledger.api.key_wire import key_budget_json
from genledger.core.content import ContentError, ContentPolicy, Feedback, GenerationContent
from genledger.core.credits import next_period_start
from genledger.core.keys import KeyRecord
from genledger.errors import BadRequest

NOW = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)  # a Friday


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("daily", datetime(2026, 11, 28, tzinfo=UTC)),
        ("weekly", datetime(2026, 11, 30, tzinfo=UTC)),
        ("monthly", datetime(2026, 12, 1, tzinfo=UTC)),
        (None, None),
    ],
)
def test_a_limit_period_ends_where_the_next_begins(reset, expected):
    assert next_period_start(reset, NOW) == expected


def test_december_rolls_over_to_january():
    assert next_period_start("monthly", datetime(2026, 12, 31, 23, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("enabled", "key", "stored"),
    [(False, None, False), (True, None, True), (False, True, True), (True, False, False)],
)
def test_the_keys_own_switch_wins_over_the_default(enabled, key, stored):
    assert ContentPolicy(enabled=enabled).applies_to(key) is stored


def test_retention_and_size_bound():
    policy = ContentPolicy(enabled=True, retention_days=7, max_bytes=10)
    assert policy.kept_since(NOW) == NOW - timedelta(days=7)
    assert policy.fits(b"x" * 10) and not policy.fits(b"x" * 11)


def content(error: ContentError | None = None) -> GenerationContent:
    return GenerationContent("gen-1", "k", NOW, ({"role": "user", "content": "hi"},), "hello", "hmm", error)


@pytest.mark.parametrize("error", [None, ContentError(502, "upstream died", "FakeAI", "boom")])
def test_content_round_trips_through_its_stored_form(error):
    stored = content(error)
    assert GenerationContent.decoded("gen-1", "k", NOW, stored.encoded()) == stored


def test_content_renders_in_openrouters_shape():
    rendered = content(ContentError(502, "upstream died", "FakeAI", None))
    assert content_json(rendered) == {
        "data": {
            "input": {"messages": [{"role": "user", "content": "hi"}]},
            "output": {"completion": "hello", "reasoning": "hmm"},
            "error": {
                "status": 502,
                "message": "upstream died",
                "provider_name": "FakeAI",
                "raw": None,
                "previous_errors": [],
            },
        }
    }


def test_feedback_renders_and_is_null_when_absent():
    assert feedback_json(None) is None
    assert feedback_json(Feedback("gen-1", "k", "latency", "slow", NOW)) == {
        "category": "latency",
        "comment": "slow",
        "created_at": NOW.isoformat(),
    }


def test_feedback_parses():
    body = orjson.dumps({"generation_id": " gen-1 ", "category": "billing", "comment": "x"})
    assert parse_feedback(body) == ("gen-1", "billing", "x")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", None),
        (b"[]", None),
        (b'{"category": "other"}', "generation_id"),
        (b'{"generation_id": "g", "category": "great"}', "category"),
        (b'{"generation_id": "g", "category": "other", "comment": 5}', "comment"),
        (b'{"generation_id": "g", "category": "other", "comment": "' + b"x" * 2001 + b'"}', "comment"),
        (b'{"generation_id": "g", "category": "other", "rating": 1}', "rating"),
    ],
)
def test_bad_feedback_is_a_400_naming_the_field(body, param):
    with pytest.raises(BadRequest) as caught:
        parse_feedback(body)
    assert (caught.value.metadata or {}).get("param") == param


def key(**fields) -> KeyRecord:
    values = dict(
        id="k", hash="h", name="n", label="l", is_management=False, disabled=False, limit_pico=None,
        limit_reset=None, usage_pico=0, created_at=NOW,
    )  # fmt: skip
    return KeyRecord(**{**values, **fields})


def test_a_key_without_a_limit_has_no_budget():
    assert key_budget_json(key(), NOW) is None


def test_a_lifetime_limit_is_a_budget_that_never_resets_and_may_be_overspent():
    budget = key_budget_json(key(limit_pico=10**12, usage_pico=3 * 10**12 // 2), NOW)
    assert budget is not None
    assert (budget["limit_usd"], budget["spend_usd"], budget["remaining_usd"]) == (1.0, 1.5, -0.5)
    assert budget["reset_interval"] is None and budget["resets_at"] is None


def test_a_new_period_starts_with_nothing_spent():
    stale = key(
        limit_pico=10**12, limit_reset="daily", period_usage_pico=10**12, period_start=NOW - timedelta(days=1)
    )
    budget = key_budget_json(stale, NOW)
    assert budget is not None and budget["spend_usd"] == 0 and budget["remaining_usd"] == 1.0
    assert budget["resets_at"] == datetime(2026, 11, 28, tzinfo=UTC).isoformat()
