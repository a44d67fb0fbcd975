"""Retry-After from upstreams: believed only when sane, capped always."""

from __future__ import annotations

import email.utils
import math

import pytest

from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.core.retry_after import MAX_RETRY_AFTER_S, parse_retry_after, retry_after_header
from genledger.errors import from_upstream

NOW = 1_760_000_000.0  # a fixed clock: dates are measured against it


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # delta-seconds
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "0.25"}, 0.25),
        ({"Retry-After": " 7 "}, 7.0),
        ({"Retry-After": "\t12\r"}, 12.0),
        ({"retry-after": "7"}, 7.0),
        ({"RETRY-AFTER": "7"}, 7.0),
        ({"Retry-After": "1e2"}, 100.0),
        # never NaN, infinite or negative
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "NaN"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "Infinity"}, None),
        ({"Retry-After": "-inf"}, None),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": "-0.5"}, None),
        ({"Retry-After": "+5"}, None),
        # huge: capped
        ({"Retry-After": "3600"}, MAX_RETRY_AFTER_S),
        ({"Retry-After": "3601"}, MAX_RETRY_AFTER_S),
        ({"Retry-After": "1e20"}, MAX_RETRY_AFTER_S),
        ({"Retry-After": "1e400"}, MAX_RETRY_AFTER_S),
        ({"Retry-After": "9" * 5000}, MAX_RETRY_AFTER_S),
        ({"Retry-After": "1e-400"}, 0.0),
        # HTTP dates
        ({"Retry-After": http_date(120)}, 120.0),
        ({"Retry-After": http_date(10 * 86400)}, MAX_RETRY_AFTER_S),
        ({"Retry-After": http_date(-120)}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"Retry-After": http_date(60).replace("GMT", "-0000")}, 60.0),
        ({"Retry-After": "Wed, 32 Oct 2015 07:28:00 GMT"}, None),
        ({"Retry-After": "Mon, 01 Jan 99999 00:00:00 GMT"}, None),
        ({"Retry-After": "Friday"}, None),
        # empty and garbage
        ({"Retry-After": ""}, None),
        ({"Retry-After": "   "}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "5 seconds"}, None),
        ({"Retry-After": "0x10"}, None),
        ({"Retry-After": "1_000"}, None),
        ({"Retry-After": "9" * 5000 + "x"}, None),
        ({}, None),
        ({"X-Other": "5"}, None),
        # retry-after-ms, which wins when usable
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": " 250 "}, 0.25),
        ({"retry-after-ms": "1e20"}, MAX_RETRY_AFTER_S),
        ({"retry-after-ms": "nan"}, None),
        ({"retry-after-ms": "-100"}, None),
        ({"retry-after-ms": ""}, None),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"retry-after-ms": "nan", "Retry-After": "9"}, 9.0),
        ({"retry-after-ms": "-100", "Retry-After": "9"}, 9.0),
        ({"retry-after-ms": "soon", "Retry-After": http_date(30)}, 30.0),
        ({"retry-after-ms": "nan", "Retry-After": "inf"}, None),
    ],
)
def test_retry_after_values(headers, expected):
    seconds = parse_retry_after(headers, NOW)
    if expected is None:
        assert seconds is None
    else:
        assert seconds == pytest.approx(expected)
        assert 0 <= seconds <= MAX_RETRY_AFTER_S


def test_a_case_insensitive_mapping_is_read_as_such():
    from multidict import CIMultiDict

    assert parse_retry_after(CIMultiDict({"RETRY-AFTER-MS": "2000"}), NOW) == 2.0


@pytest.mark.parametrize(
    ("seconds", "header"),
    [
        (0.0, "0"),
        (0.1, "1"),
        (7.0, "7"),
        (1e20, str(int(MAX_RETRY_AFTER_S))),
        (math.inf, None),
        (-math.inf, None),
        (math.nan, None),
        (-1.0, None),
    ],
)
def test_the_relayed_header_is_whole_capped_and_never_nonsense(seconds, header):
    assert retry_after_header(seconds) == header


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -math.inf, -3.0, 1e308, 5e-324])
def test_from_upstream_cannot_crash_on_any_float(seconds):
    failure = UpstreamFailure(
        FailureKind.RATE_LIMITED, "slow down", provider_name="Acme", retry_after=seconds
    )
    error = from_upstream(failure)
    assert error.status == 429
    value = error.headers.get("Retry-After")
    assert value is None or 0 <= int(value) <= MAX_RETRY_AFTER_S
