"""The app's one layer of middleware, and the counter of failed authentications, built from the settings."""

from __future__ import annotations

import functools
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from genledger.api.edge import Edge, Handler
from genledger.api.errors import on_gateway_error, on_http_exception, on_ledger_error
from genledger.api.request_log import RequestLines
from genledger.config import LimitsConfig, Settings
from genledger.errors import GatewayError
from genledger.ledger.unavailable import LEDGER_ERRORS
from genledger.limits.auth_failures import AuthFailureCounter, AuthFailures
from genledger.logs import line_format, request_lines_on


def auth_failure_counter(limits: LimitsConfig) -> AuthFailureCounter | None:
    """Failed authentications counted in memory, and in Redis too when the limits use it."""
    if not limits.auth_failures:
        return None
    local = AuthFailures(limits.auth_failures, limits.auth_failure_window, exempt=limits.auth_failures_exempt)
    if limits.backend != "redis":
        return local
    from genledger.limits.shared_auth_failures import SharedAuthFailures

    return SharedAuthFailures(local, limits.redis_url)


def edge(
    settings: Settings, *, log_write: Callable[[bytes], object], auth_failures: AuthFailureCounter | None
) -> Callable[[ASGIApp], Edge]:
    """The app's one layer of middleware (``api/edge.py``), configured from ``settings``: it
    renders ``GatewayError`` and Starlette's ``HTTPException`` as the contract's envelope,
    writes request lines to ``log_write`` when the logging settings have them on, and limits
    bodies and failed authentications as the settings say."""
    handlers: dict[type[Exception], Handler] = {
        GatewayError: on_gateway_error,
        HTTPException: on_http_exception,
        **dict.fromkeys(LEDGER_ERRORS, on_ledger_error),
    }
    lines = (
        RequestLines(log_write, line_format(settings.logging)) if request_lines_on(settings.logging) else None
    )
    return functools.partial(
        Edge,
        handlers=handlers,
        max_body_bytes=settings.max_body_bytes,
        auth_failures=auth_failures,
        lines=lines,
    )
