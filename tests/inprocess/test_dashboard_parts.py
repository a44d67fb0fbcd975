"""The dashboard's pure parts: the cookie secret's source, buckets, money as text, cost parts."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genledger.api.dashboard.render import amount, json_value, usd
from genledger.config import load_settings
from genledger.core.activity import DAY, HOUR
from genledger.core.pricing import Price, cost, cost_parts
from genledger.core.usage import Usage
from genledger.gateway.cookie_secret import cookie_secret, secret_file
from genledger.gateway.overview import Window, buckets


def test_a_configured_secret_wins(tmp_path):
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path}/l.db", dashboard_secret="x" * 40)
    assert cookie_secret(settings) == b"x" * 40
    assert not (tmp_path / "l.db.dashboard-secret").exists()


def test_a_short_configured_secret_is_refused():
    from genledger.config import ConfigError

    with pytest.raises(ConfigError, match="dashboard_secret"):
        load_settings(None, dashboard_secret="short")


def test_sqlite_keeps_a_generated_secret_beside_its_file(tmp_path):
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path}/ledger.db")
    first = cookie_secret(settings)
    path = tmp_path / "ledger.db.dashboard-secret"
    assert path.read_bytes() == first and len(first) == 64
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert cookie_secret(settings) == first  # a restart keeps the sessions


def test_an_instance_that_loses_the_race_reads_the_winners_secret(tmp_path, monkeypatch):
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path}/ledger.db")
    path = tmp_path / "ledger.db.dashboard-secret"
    real_open = os.open

    def raced(file, flags, mode=0o777):
        if str(file) == str(path):
            path.write_bytes(b"the winner's")
        return real_open(file, flags, mode)

    monkeypatch.setattr(os, "open", raced)
    assert cookie_secret(settings) == b"the winner's"


@pytest.mark.parametrize("url", ["postgresql://u@127.0.0.1/db"])
def test_without_a_file_the_secret_lasts_as_long_as_the_process(url, caplog):
    settings = load_settings(None, database_url=url)
    assert secret_file(url) is None
    assert cookie_secret(settings) != cookie_secret(settings)
    assert "GENLEDGER_DASHBOARD_SECRET" in caplog.text


def test_buckets_cover_the_window_hour_by_hour_or_day_by_day():
    since = datetime(2026, 11, 26, 13, 20, tzinfo=UTC)
    until = datetime(2026, 11, 27, 13, 20, tzinfo=UTC)
    hours = buckets(since, until, HOUR)
    assert hours[0] == "2026-11-26T13:00:00Z" and hours[-1] == "2026-11-27T13:00:00Z" and len(hours) == 25
    assert buckets(since, until, DAY) == ["2026-11-26", "2026-11-27"]
    assert Window.MONTH.bucket == DAY and Window.WEEK.bucket == HOUR
    assert [w.span.days for w in Window] == [1, 7, 30]


@pytest.mark.parametrize(
    ("pico", "text"),
    [
        (0, "$0.00"),
        (10**12, "$1.00"),
        (3_300_000, "$0.0000033"),
        (1_234_567_800_000_000, "$1,234.5678"),
        (1, "$0.000000000001"),
        (None, "—"),
    ],
)
def test_money_is_shown_exactly(pico, text):
    assert usd(pico) == text


def test_a_limit_goes_back_into_its_form_as_a_plain_number():
    assert amount(2_500_000_000_000) == "2.5" and amount(0) == "0"
    assert json_value(False) == "false" and json_value(3.3e-06) == "3.3e-6" and json_value("a") == "a"


@given(
    prompt=st.integers(0, 10**6),
    completion=st.integers(0, 10**6),
    cached=st.integers(0, 10**6),
    written=st.integers(0, 10**6),
    reasoning=st.integers(0, 10**6),
)
def test_cost_parts_add_up_to_the_cost(prompt, completion, cached, written, reasoning):
    price = Price(Decimal("1.5"), Decimal("6"), Decimal("0.15"), Decimal("1.875"), Decimal("12"))
    usage = Usage(prompt, completion, cached, written, reasoning)
    parts = cost_parts(usage, price)
    assert parts.total == cost(usage, price).total
    assert min(parts.prompt, parts.cached_prompt, parts.cache_write, parts.completion, parts.reasoning) >= 0
