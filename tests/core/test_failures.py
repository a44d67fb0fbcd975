import pytest

from genledger.core.failures import (
    RAW_ERROR_LIMIT,
    RETRYABLE_KINDS,
    STATUS_BY_KIND,
    FailureKind,
    UpstreamFailure,
    classify_status,
)
from genledger.errors import ERROR_BY_STATUS, from_upstream


def test_every_failure_kind_maps_to_exactly_one_status():
    assert set(STATUS_BY_KIND) == set(FailureKind)
    for kind, status in STATUS_BY_KIND.items():
        assert status in ERROR_BY_STATUS, kind


@pytest.mark.parametrize(
    ("status", "body", "kind", "caller_status"),
    [
        (529, "", FailureKind.OVERLOADED, 529),
        (503, '{"error": {"type": "overloaded_error"}}', FailureKind.OVERLOADED, 529),
        (503, "maintenance", FailureKind.SERVER_ERROR, 502),
        (500, "", FailureKind.SERVER_ERROR, 502),
        (502, "", FailureKind.SERVER_ERROR, 502),
        (429, "", FailureKind.RATE_LIMITED, 429),
        (400, "", FailureKind.BAD_REQUEST, 400),
        (422, "", FailureKind.BAD_REQUEST, 400),
        (401, "", FailureKind.SERVER_ERROR, 502),
        (504, "", FailureKind.TIMEOUT, 524),
    ],
)
def test_upstream_statuses_classify(status, body, kind, caller_status):
    assert classify_status(status, body) is kind
    assert STATUS_BY_KIND[kind] == caller_status


def test_bad_request_is_the_only_kind_not_worth_another_endpoint():
    assert set(FailureKind) - RETRYABLE_KINDS == {FailureKind.BAD_REQUEST}


def test_from_upstream_carries_provider_raw_and_retry_after():
    failure = UpstreamFailure(
        FailureKind.RATE_LIMITED, "slow down", provider_name="Acme", raw={"e": 1}, retry_after=1.2
    )
    error = from_upstream(failure)
    assert error.status == 429
    assert error.envelope() == {
        "error": {"code": 429, "message": "slow down", "metadata": {"provider_name": "Acme", "raw": {"e": 1}}}
    }
    assert error.headers == {"Retry-After": "2"}


def test_raw_errors_are_bounded():
    failure = UpstreamFailure(FailureKind.SERVER_ERROR, "x", provider_name="p", raw="y" * 10_000)
    assert len(failure.raw) <= RAW_ERROR_LIMIT + 1


def readme_kind(status: int, body: str) -> FailureKind:
    """The README's table, written out independently of classify_status."""
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status == 529 or (status == 503 and "overload" in body.lower()):
        return FailureKind.OVERLOADED
    if status in {400, 413, 422}:
        return FailureKind.BAD_REQUEST
    if status in {408, 504}:
        return FailureKind.TIMEOUT
    return FailureKind.SERVER_ERROR  # other 5xx, and 401/403/404 and the other 4xx: our configuration


@pytest.mark.parametrize(
    "body", ["", '{"error": {"message": "The server is Overloaded"}}'], ids=["plain", "overload"]
)
@pytest.mark.parametrize("status", range(400, 600))
def test_every_error_status_maps_to_the_kind_the_readme_names(status, body):
    kind = classify_status(status, body)
    assert kind is readme_kind(status, body)
    assert STATUS_BY_KIND[kind] in ERROR_BY_STATUS
