"""The gateway's errors. Every one renders as the contract's JSON envelope.

    GatewayError (500)
    ├── BadRequest (400)
    ├── Unauthorized (401)
    ├── PaymentRequired (402)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── MethodNotAllowed (405)
    ├── Conflict (409)
    ├── PayloadTooLarge (413)
    ├── UnprocessableEntity (422)
    ├── TooManyRequests (429)
    ├── ServiceUnavailable (503)
    │   └── LedgerUnavailable
    ├── BadGateway (502)
    ├── UpstreamTimeout (524)
    └── ProviderOverloaded (529)

:func:`from_upstream` turns an :class:`~genledger.core.failures.UpstreamFailure` into the
one whose status ``STATUS_BY_KIND`` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from genledger.core.failures import UpstreamFailure
from genledger.core.retry_after import retry_after_header


class GatewayError(Exception):
    """An error the caller sees as ``{"error": {"code", "message", "metadata"}}``."""

    status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata) if metadata else None
        self.headers = dict(headers) if headers else {}

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.metadata is not None:
            error["metadata"] = self.metadata
        return {"error": error}


class BadRequest(GatewayError):
    status = 400


class Unauthorized(GatewayError):
    status = 401


class PaymentRequired(GatewayError):
    status = 402


class Forbidden(GatewayError):
    status = 403


class NotFound(GatewayError):
    status = 404


class MethodNotAllowed(GatewayError):
    status = 405


class Conflict(GatewayError):
    status = 409


class PayloadTooLarge(GatewayError):
    status = 413


class UnprocessableEntity(GatewayError):
    status = 422


class TooManyRequests(GatewayError):
    status = 429


class BadGateway(GatewayError):
    status = 502


class ServiceUnavailable(GatewayError):
    status = 503


class LedgerUnavailable(ServiceUnavailable):
    """The ledger's database could not be reached: nothing was recorded, so nothing was
    answered; a retry after a moment may succeed."""

    def __init__(self, message: str = "The ledger is unavailable; retry the request") -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class UpstreamTimeout(GatewayError):
    status = 524


class ProviderOverloaded(GatewayError):
    status = 529


ERROR_BY_STATUS: dict[int, type[GatewayError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        PaymentRequired,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        TooManyRequests,
        BadGateway,
        ServiceUnavailable,
        UpstreamTimeout,
        ProviderOverloaded,
    )
}


def from_upstream(failure: UpstreamFailure) -> GatewayError:
    """The caller-facing error for an upstream failure, with the provider's raw error."""
    cls = ERROR_BY_STATUS[failure.status]
    headers = {}
    retry_after = retry_after_header(failure.retry_after) if failure.retry_after is not None else None
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    metadata = {"provider_name": failure.provider_name, "raw": failure.raw}
    return cls(failure.message, metadata=metadata, headers=headers)
