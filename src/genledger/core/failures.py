"""Upstream failures and the one table that maps them to the caller's status.

Every way an upstream call can fail is a :class:`FailureKind`; a provider adapter raises
:class:`UpstreamFailure` with one of them and the gateway answers with
``STATUS_BY_KIND[kind]``. A test proves the table is total.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

RAW_ERROR_LIMIT = 2_000  # characters of an upstream error body kept in metadata.raw


class FailureKind(Enum):
    UNREACHABLE = "unreachable"  # connection refused, reset, DNS
    TIMEOUT = "timeout"  # no answer within the provider's timeout
    OVERLOADED = "overloaded"  # 529, or a 503 that says so
    RATE_LIMITED = "rate_limited"  # upstream 429
    BAD_REQUEST = "bad_request"  # upstream 400/413/422: the request itself is wrong
    UNSUPPORTED = "unsupported"  # the provider's API cannot express the request: nothing was sent
    SERVER_ERROR = "server_error"  # other 5xx, and 401/403/404 (our configuration, not the caller)
    INVALID_RESPONSE = "invalid_response"  # not JSON, wrong shape, broken stream


STATUS_BY_KIND: dict[FailureKind, int] = {
    FailureKind.UNREACHABLE: 502,
    FailureKind.TIMEOUT: 524,
    FailureKind.OVERLOADED: 529,
    FailureKind.RATE_LIMITED: 429,
    FailureKind.BAD_REQUEST: 400,
    FailureKind.UNSUPPORTED: 400,
    FailureKind.SERVER_ERROR: 502,
    FailureKind.INVALID_RESPONSE: 502,
}

# Failures worth trying another endpoint for; a bad request would fail anywhere, while one
# provider's API that cannot express the request says nothing of another's.
RETRYABLE_KINDS = frozenset(STATUS_BY_KIND) - {FailureKind.BAD_REQUEST}
# Failures of the endpoint itself, which its circuit breaker counts: not a 429 (the caller's
# pace), nor a request it was never sent.
ENDPOINT_FAILURE_KINDS = RETRYABLE_KINDS - {FailureKind.RATE_LIMITED, FailureKind.UNSUPPORTED}


class UpstreamFailure(Exception):
    """An upstream call that did not produce an answer."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        provider_name: str,
        raw: Any = None,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.provider_name = provider_name
        self.raw = bound_raw(raw)
        self.upstream_status = upstream_status
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return STATUS_BY_KIND[self.kind]


def classify_status(status: int, body_text: str = "") -> FailureKind:
    """The failure kind of an upstream HTTP error status."""
    if status == 529:
        return FailureKind.OVERLOADED
    if status == 503 and "overload" in body_text.lower():
        return FailureKind.OVERLOADED
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status in (400, 413, 422):
        return FailureKind.BAD_REQUEST
    if status in (408, 504):
        return FailureKind.TIMEOUT
    return FailureKind.SERVER_ERROR


STREAM_ERROR_TYPES: dict[str, FailureKind] = {
    # Anthropic's error.type values
    "overloaded_error": FailureKind.OVERLOADED,
    "rate_limit_error": FailureKind.RATE_LIMITED,
    "timeout_error": FailureKind.TIMEOUT,
    "invalid_request_error": FailureKind.BAD_REQUEST,
    "request_too_large": FailureKind.BAD_REQUEST,
    "api_error": FailureKind.SERVER_ERROR,
    "authentication_error": FailureKind.SERVER_ERROR,
    "permission_error": FailureKind.SERVER_ERROR,
    "not_found_error": FailureKind.SERVER_ERROR,
    "billing_error": FailureKind.SERVER_ERROR,
    # OpenAI's error.code and error.type values
    "rate_limit_exceeded": FailureKind.RATE_LIMITED,
    "overloaded": FailureKind.OVERLOADED,
    "context_length_exceeded": FailureKind.BAD_REQUEST,
    "server_error": FailureKind.SERVER_ERROR,
    "insufficient_quota": FailureKind.SERVER_ERROR,
    "invalid_api_key": FailureKind.SERVER_ERROR,
}
"""Failure kinds of an in-stream error by its ``code`` or ``type`` string; others are SERVER_ERROR."""


def stream_error_kind(error: Any) -> FailureKind:
    """The failure kind of an error object sent inside a stream, in either provider's shape.

    OpenAI and OpenRouter send ``{"code": 429 | "rate_limit_exceeded" | ..., "message", "type"}``;
    Anthropic sends ``{"type": "overloaded_error" | ..., "message"}``. An HTTP status in
    ``code`` (a number, or digits) goes through :func:`classify_status` with the message;
    otherwise ``code``, then ``type``, is looked up in :data:`STREAM_ERROR_TYPES`. Anything
    else, including an error that is not an object, is SERVER_ERROR.
    """
    if not isinstance(error, dict):
        return FailureKind.SERVER_ERROR
    code = error.get("code")
    status = _status_code(code)
    if status is not None:
        message = error.get("message")
        return classify_status(status, message if isinstance(message, str) else "")
    for name in (code, error.get("type")):
        if isinstance(name, str) and name in STREAM_ERROR_TYPES:
            return STREAM_ERROR_TYPES[name]
    return FailureKind.SERVER_ERROR


def _status_code(code: Any) -> int | None:
    if isinstance(code, str) and code.isascii() and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    return None


def bound_raw(raw: Any) -> Any:
    """Keep an upstream error body small enough to echo in ``metadata.raw``."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        return raw if len(raw) <= RAW_ERROR_LIMIT else raw[:RAW_ERROR_LIMIT] + "…"
    if isinstance(raw, dict | list):
        import json

        text = json.dumps(raw, default=str)
        return raw if len(text) <= RAW_ERROR_LIMIT else text[:RAW_ERROR_LIMIT] + "…"
    return bound_raw(str(raw))
