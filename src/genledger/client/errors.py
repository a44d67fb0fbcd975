"""Every exception the genledger client raises.

The hierarchy::

    GenledgerError                          base of everything below
    ├── MissingAPIKeyError                  no API key: neither ``api_key=`` nor GENLEDGER_API_KEY
    ├── APIConnectionError                  no HTTP response: connect, read, write or protocol failure
    │   └── APITimeoutError                 the request timed out
    ├── ResponseValidationError             a 2xx response whose body does not match the model
    └── APIStatusError                      an HTTP error response (non-2xx)
        ├── BadRequestResponseError         400
        ├── UnauthorizedResponseError       401
        ├── PaymentRequiredResponseError    402
        ├── ForbiddenResponseError          403
        ├── NotFoundResponseError           404
        ├── TooManyRequestsResponseError    429
        ├── InternalServerResponseError     500
        ├── BadGatewayResponseError         502
        ├── EdgeNetworkTimeoutResponseError 524
        ├── ProviderOverloadedResponseError 529
        └── APIError                        any other status, or an error body that is not the
                                            JSON envelope (whatever the status)

:data:`STATUS_ERRORS` is the one table from status code to class. Arguments that are wrong
before any request is made (an empty generation id, a negative ``max_retries``) raise the
built-in ``ValueError`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import httpx

from ._models import ErrorDetail

__all__ = [
    "STATUS_ERRORS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "BadGatewayResponseError",
    "BadRequestResponseError",
    "EdgeNetworkTimeoutResponseError",
    "ForbiddenResponseError",
    "GenledgerError",
    "InternalServerResponseError",
    "MissingAPIKeyError",
    "NotFoundResponseError",
    "PaymentRequiredResponseError",
    "ProviderOverloadedResponseError",
    "ResponseValidationError",
    "TooManyRequestsResponseError",
    "UnauthorizedResponseError",
]


class GenledgerError(Exception):
    """Base class of every error raised by ``genledger.client``."""


class MissingAPIKeyError(GenledgerError):
    """Raised when a client is constructed without an API key (argument or environment)."""


class APIConnectionError(GenledgerError):
    """The request got no HTTP response (after any retries).

    ``request`` is the last ``httpx.Request`` attempted; the underlying httpx exception is
    chained as ``__cause__``.
    """

    def __init__(self, message: str, *, request: httpx.Request) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or pool timeout) after any retries."""


class ResponseValidationError(GenledgerError):
    """A successful response whose body is not the documented shape.

    ``field`` names the first offending location (e.g. ``"data.total_cost"``), ``errors`` holds
    every problem as ``{"loc", "msg", "type"}`` dicts, and ``response`` is the raw response.
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        field: str | None,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.response = response
        self.field = field
        self.errors = list(errors)


class APIStatusError(GenledgerError):
    """An HTTP error response, with everything the server said about it.

    Attributes:
        status_code: the HTTP status.
        error: the parsed ``error`` object (``code``, ``message``, ``metadata``), or ``None``
            when the body was not the JSON envelope.
        user_id: the envelope's ``user_id``, if any.
        body: the decoded JSON body, or the body text when it was not JSON.
        headers: the response headers.
        response: the raw ``httpx.Response``.
        request_id: the server's ``X-Request-ID`` response header, else the id the client sent.
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        error: ErrorDetail | None = None,
        user_id: str | None = None,
        body: object = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.error = error
        self.user_id = user_id
        self.body = body
        self.request_id = request_id


class BadRequestResponseError(APIStatusError):
    """400: a missing, empty or malformed parameter."""


class UnauthorizedResponseError(APIStatusError):
    """401: a missing, malformed, unknown, disabled or expired API key."""


class PaymentRequiredResponseError(APIStatusError):
    """402: no credit left; ``error.metadata["limit_source"]`` says which limit ran out."""


class ForbiddenResponseError(APIStatusError):
    """403: the key may not do this."""


class NotFoundResponseError(APIStatusError):
    """404: nothing with that id is visible to this key."""


class TooManyRequestsResponseError(APIStatusError):
    """429: rate limited; see ``headers["Retry-After"]`` and the ``X-RateLimit-*`` headers."""


class InternalServerResponseError(APIStatusError):
    """500: an unexpected server fault."""


class BadGatewayResponseError(APIStatusError):
    """502: the upstream provider failed or answered garbage."""


class EdgeNetworkTimeoutResponseError(APIStatusError):
    """524: the upstream provider did not answer in time."""


class ProviderOverloadedResponseError(APIStatusError):
    """529: the upstream provider is overloaded."""


class APIError(APIStatusError):
    """Any other error status, or an error body that is not the JSON error envelope."""


STATUS_ERRORS: Mapping[int, type[APIStatusError]] = MappingProxyType(
    {
        400: BadRequestResponseError,
        401: UnauthorizedResponseError,
        402: PaymentRequiredResponseError,
        403: ForbiddenResponseError,
        404: NotFoundResponseError,
        429: TooManyRequestsResponseError,
        500: InternalServerResponseError,
        502: BadGatewayResponseError,
        524: EdgeNetworkTimeoutResponseError,
        529: ProviderOverloadedResponseError,
    }
)
"""The contract's status table: status code → error class. Any other status → :class:`APIError`."""
