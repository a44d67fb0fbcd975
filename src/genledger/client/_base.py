"""What the sync and async clients share: configuration, request building, response parsing.

Everything here is I/O-free. ``Client`` and ``AsyncClient`` only add the transport call and
the sleep between attempts; every decision (headers, URL, timeout, retry or not, which error)
is made here or in the retry policy.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import httpx
import pydantic

from ._models import ErrorEnvelope
from ._retry import RetryPolicy
from ._types import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    NOT_GIVEN,
    NotGiven,
    TimeoutTypes,
)
from ._version import __version__
from .errors import (
    STATUS_ERRORS,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    MissingAPIKeyError,
    ResponseValidationError,
)

__all__ = ["BaseClient", "RequestSpec"]

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

REQUEST_ID_HEADER = "X-Request-ID"
USER_AGENT = f"genledger-python/{__version__}"
_BODY_EXCERPT_CHARS = 500
_MAX_LISTED_ERRORS = 5


@dataclass(frozen=True, kw_only=True)
class RequestSpec(Generic[ModelT]):
    """One API call: what to send and what a success must validate as.

    ``validates`` says what ``model`` describes: the body's ``data`` (single records), or the
    whole body (lists, whose ``data`` has siblings such as ``next_cursor``).
    """

    method: str
    path: str
    model: type[ModelT]
    validates: Literal["data", "body"] = "data"
    params: Mapping[str, str] | None = None
    timeout: TimeoutTypes | NotGiven = NOT_GIVEN
    max_retries: int | NotGiven = NOT_GIVEN


class BaseClient:
    """Configuration and the I/O-free half of every request, shared by both clients."""

    api_key: str
    base_url: httpx.URL
    timeout: TimeoutTypes
    max_retries: int
    retry_policy: RetryPolicy

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | httpx.URL | None,
        timeout: TimeoutTypes | NotGiven,
        max_retries: int,
        default_headers: Mapping[str, str] | None,
        retry_policy: RetryPolicy | None,
        http_client_timeout: httpx.Timeout | None,
    ) -> None:
        resolved_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not resolved_key:
            raise MissingAPIKeyError(
                f"No API key: pass api_key=... to the client or set the {API_KEY_ENV} environment variable."
            )
        self.api_key = resolved_key
        resolved_url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        # A trailing slash makes relative paths join under the base path instead of replacing
        # its last segment ("/api/v1" + "generation" -> "/api/v1/generation").
        self.base_url = httpx.URL(str(resolved_url).rstrip("/") + "/")
        if isinstance(timeout, NotGiven):
            timeout = http_client_timeout if http_client_timeout is not None else DEFAULT_TIMEOUT
        self.timeout = timeout
        self.max_retries = _checked_max_retries(max_retries)
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self._custom_headers = dict(default_headers or {})

    # -- building ----------------------------------------------------------------------------

    def _build_request(
        self,
        http_client: httpx.Client | httpx.AsyncClient,
        spec: RequestSpec[Any],
        request_id: str,
    ) -> httpx.Request:
        headers = httpx.Headers({"Accept": "application/json", "User-Agent": USER_AGENT})
        headers.update(self._custom_headers)  # case-insensitive: replaces, never duplicates
        headers["Authorization"] = f"Bearer {self.api_key}"
        headers[REQUEST_ID_HEADER] = request_id
        timeout = self.timeout if isinstance(spec.timeout, NotGiven) else spec.timeout
        return http_client.build_request(
            spec.method,
            self.base_url.join(spec.path),
            params=dict(spec.params) if spec.params is not None else None,
            headers=headers,
            timeout=timeout,
        )

    @staticmethod
    def _new_request_id() -> str:
        """One id per call; every retry of the call reuses it."""
        return str(uuid.uuid4())

    def _max_retries_for(self, spec: RequestSpec[Any]) -> int:
        if isinstance(spec.max_retries, NotGiven):
            return self.max_retries
        return _checked_max_retries(spec.max_retries)

    # -- deciding ----------------------------------------------------------------------------

    def _retry_delay(
        self, *, retries_taken: int, max_retries: int, outcome: httpx.Response | httpx.RequestError
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to stop and report this outcome.

        ``outcome`` is the attempt's response, or the httpx error it raised instead. Transport
        errors (connect, timeout, protocol) are retryable; other request errors are not.
        """
        if isinstance(outcome, httpx.Response):
            if outcome.is_success:
                return None
            status_code: int | None = outcome.status_code
            headers: httpx.Headers | None = outcome.headers
        elif isinstance(outcome, httpx.TransportError):
            status_code, headers = None, None
        else:
            return None
        if not self.retry_policy.should_retry(
            retries_taken=retries_taken, max_retries=max_retries, status_code=status_code
        ):
            return None
        return self.retry_policy.delay(retries_taken=retries_taken, headers=headers)

    # -- interpreting ------------------------------------------------------------------------

    @staticmethod
    def _connection_error(exc: httpx.RequestError, request: httpx.Request) -> APIConnectionError:
        """The client error for a request that got no response (raise it ``from exc``)."""
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"Request timed out: {exc!r}", request=request)
        return APIConnectionError(f"Connection error: {exc!r}", request=request)

    @staticmethod
    def _parse_response(spec: RequestSpec[ModelT], response: httpx.Response) -> ModelT:
        """The validated ``data`` (or body) of a 2xx response; raises the matching error otherwise."""
        if not response.is_success:
            raise _status_error(response)
        where = f"{response.request.method} {response.request.url.path}"
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ResponseValidationError(
                f"{where}: response body is not JSON: {_excerpt(response)}", response=response, field=None
            ) from None
        if not isinstance(body, dict) or "data" not in body:
            raise ResponseValidationError(
                f'{where}: response body has no "data" object: {_excerpt(response)}',
                response=response,
                field="data",
            )
        whole = spec.validates == "body"
        prefix: tuple[str, ...] = () if whole else ("data",)
        try:
            return spec.model.model_validate(body if whole else body["data"])
        except pydantic.ValidationError as exc:
            problems = [
                {"loc": ".".join((*prefix, *map(str, e["loc"]))), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False)
            ]
            listed = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems[:_MAX_LISTED_ERRORS])
            more = (
                f" (and {len(problems) - _MAX_LISTED_ERRORS} more)"
                if len(problems) > _MAX_LISTED_ERRORS
                else ""
            )
            raise ResponseValidationError(
                f"{where}: response does not match {spec.model.__name__}: {listed}{more}",
                response=response,
                field=problems[0]["loc"] if problems else None,
                errors=problems,
            ) from None


def _status_error(response: httpx.Response) -> APIStatusError:
    """Map an error response to its class: by status, and only for a JSON error envelope."""
    request_id = response.headers.get(REQUEST_ID_HEADER) or response.request.headers.get(REQUEST_ID_HEADER)
    status = response.status_code
    content_type = response.headers.get("content-type", "")
    body: object = response.text
    envelope: ErrorEnvelope | None = None
    if _is_json(content_type):
        try:
            body = response.json()
            envelope = ErrorEnvelope.model_validate(body)
        except (json.JSONDecodeError, UnicodeDecodeError, pydantic.ValidationError):
            envelope = None
    if envelope is None:
        return APIError(
            f"HTTP {status} {response.reason_phrase} with content-type {content_type or 'none'!r} "
            f"and no error envelope: {_excerpt(response)}",
            response=response,
            body=body,
            request_id=request_id,
        )
    error_class = STATUS_ERRORS.get(status, APIError)
    return error_class(
        f"HTTP {status}: {envelope.error.message}",
        response=response,
        error=envelope.error,
        user_id=envelope.user_id,
        body=body,
        request_id=request_id,
    )


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _excerpt(response: httpx.Response) -> str:
    text = response.text
    if len(text) <= _BODY_EXCERPT_CHARS:
        return repr(text)
    return f"{text[:_BODY_EXCERPT_CHARS]!r}... ({len(text)} chars)"


def _checked_max_retries(max_retries: int) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative int, got {max_retries!r}")
    return max_retries
