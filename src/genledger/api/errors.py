"""One place renders every error as the contract's JSON envelope, whatever raised it."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from genledger.api.anthropic_messages import error_json as anthropic_error_json
from genledger.api.router import app_of
from genledger.errors import ERROR_BY_STATUS, GatewayError, LedgerUnavailable
from genledger.ledger.unavailable import unreachable

log = logging.getLogger("genledger")


def count_error(request: Request, status: int) -> None:
    """Count an error answer in the app's metrics (when it has them)."""
    services = app_of(request).services
    if services is not None:
        services.metrics.error(status)


async def auth_failed(request: Request) -> None:
    """Count a failed authentication from ``request``'s address (when the app limits them).

    Called wherever a 401 is rendered: here for every route, and by the dashboard's sign-in.
    """
    failures = app_of(request).auth_failures
    client = request.client
    if failures is not None and client is not None:
        await failures.failed(client.host)


MESSAGES_PATH = "/api/v1/messages"
"""Anthropic's Messages route: its errors, the router's and the edge's too, in Anthropic's shape."""


def error_response(
    error: GatewayError, request: Request | None = None, status: int | None = None
) -> Response:
    status = status or error.status
    body = error.envelope()
    if request is not None:
        count_error(request, status)
        path: str = request.scope["path"]
        if path == MESSAGES_PATH or path.startswith(MESSAGES_PATH + "/"):
            body = anthropic_error_json(status, error.message)
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=error.headers,
        media_type="application/json",
    )


async def on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    if exc.status == 401:
        await auth_failed(request)
    return error_response(exc, request)


async def on_ledger_error(request: Request, exc: Exception) -> Response:
    """A database error that reached a route: a 503 the caller may retry when the ledger could
    not be reached (``ledger/unavailable.py``), else the 500 of any internal fault. The log
    names the error's class, never its text (it may quote parameters)."""
    if not unreachable(exc):
        log.error("unhandled error", exc_info=exc)
        return error_response(GatewayError("Internal Server Error"), request)
    log.error("the ledger could not be reached: %s", type(exc).__name__)
    return error_response(LedgerUnavailable(), request)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    cls = ERROR_BY_STATUS.get(exc.status_code, GatewayError)
    if exc.status_code == 404:
        message = f"Not found: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} not allowed on {request.url.path}"
    else:
        message = exc.detail
    return error_response(cls(message, headers=exc.headers), request, exc.status_code)
