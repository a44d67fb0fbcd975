import pytest

from genledger.core.failures import (
    RAW_ERROR_LIMIT,
    RETRYABLE_KINDS,
    STATUS_BY_KIND,
    STREAM_ERROR_TYPES,
    FailureKind,
    UpstreamFailure,
    classify_status,
    stream_error_kind,
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


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        # OpenRouter: an HTTP status in code, classified as the status itself would be
        ({"code": 429, "message": "Rate limit exceeded"}, FailureKind.RATE_LIMITED),
        ({"code": 502, "message": "Provider returned error"}, FailureKind.SERVER_ERROR),
        ({"code": 503, "message": "The model is overloaded"}, FailureKind.OVERLOADED),
        ({"code": 529, "message": "Overloaded"}, FailureKind.OVERLOADED),
        ({"code": 400, "message": "bad"}, FailureKind.BAD_REQUEST),
        ({"code": 408, "message": "timeout"}, FailureKind.TIMEOUT),
        ({"code": "429"}, FailureKind.RATE_LIMITED),
        ({"code": 429, "type": "overloaded_error"}, FailureKind.RATE_LIMITED),  # the status wins
        # OpenAI: codes and types as strings; the code wins over the type
        ({"code": "rate_limit_exceeded", "type": "requests"}, FailureKind.RATE_LIMITED),
        ({"code": "rate_limit_exceeded", "type": "server_error"}, FailureKind.RATE_LIMITED),
        ({"code": "context_length_exceeded", "type": "invalid_request_error"}, FailureKind.BAD_REQUEST),
        ({"code": "overloaded", "type": "server_error"}, FailureKind.OVERLOADED),
        ({"code": None, "type": "server_error", "message": "oops"}, FailureKind.SERVER_ERROR),
        ({"code": "no_such_code", "type": "invalid_request_error"}, FailureKind.BAD_REQUEST),
        # Anthropic: types
        ({"type": "overloaded_error", "message": "Overloaded"}, FailureKind.OVERLOADED),
        ({"type": "rate_limit_error"}, FailureKind.RATE_LIMITED),
        ({"type": "timeout_error"}, FailureKind.TIMEOUT),
        ({"type": "invalid_request_error"}, FailureKind.BAD_REQUEST),
        ({"type": "request_too_large"}, FailureKind.BAD_REQUEST),
        ({"type": "api_error"}, FailureKind.SERVER_ERROR),
        ({"type": "authentication_error"}, FailureKind.SERVER_ERROR),
        ({"type": "permission_error"}, FailureKind.SERVER_ERROR),
        ({"type": "not_found_error"}, FailureKind.SERVER_ERROR),
        # Anything else
        ({"type": "brand_new_error"}, FailureKind.SERVER_ERROR),
        ({"code": 200}, FailureKind.SERVER_ERROR),
        ({"code": 1e3}, FailureKind.SERVER_ERROR),
        ({"code": True}, FailureKind.SERVER_ERROR),
        ({"code": "²"}, FailureKind.SERVER_ERROR),
        ({"type": ["rate_limit_error"]}, FailureKind.SERVER_ERROR),
        ({}, FailureKind.SERVER_ERROR),
        ("rate limited", FailureKind.SERVER_ERROR),
        (None, FailureKind.SERVER_ERROR),
    ],
)
def test_in_stream_errors_of_either_shape_classify(error, kind):
    assert stream_error_kind(error) is kind


def test_every_named_stream_error_maps_to_a_kind_with_a_status():
    for name, kind in STREAM_ERROR_TYPES.items():
        assert stream_error_kind({"type": name}) is kind
        assert kind in STATUS_BY_KIND
