"""The app's middleware, outermost first, built from the settings."""

from __future__ import annotations

from collections.abc import Callable

from starlette.middleware import Middleware

from genledger.api.auth_failures import AuthFailureLimit
from genledger.api.middleware import BodyLimit, UnexpectedErrors
from genledger.api.nul_guard import NulGuard
from genledger.api.request_log import RequestLog
from genledger.config import LimitsConfig, Settings
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


def middleware_stack(
    settings: Settings, *, log_write: Callable[[bytes], object], auth_failures: AuthFailureCounter | None
) -> list[Middleware]:
    """RequestLog first, so that every answer carries the request's id and is logged.
    UnexpectedErrors next, so that it also answers for a failure in the ones below; Starlette's
    own ServerErrorMiddleware is left only what it re-raises. Then the refusal of guessing
    addresses, before any work; then the body's limit, and the refusal of a NUL in the URL.

    None below RequestLog may wrap ``send`` to see a body: streams send their frames with the
    server's own ``send`` (``request_log.body_send``), past every middleware."""
    guard = [Middleware(AuthFailureLimit, failures=auth_failures)] if auth_failures is not None else []
    return [
        Middleware(
            RequestLog,
            write=log_write if request_lines_on(settings.logging) else None,
            format=line_format(settings.logging),
        ),
        Middleware(UnexpectedErrors),
        *guard,
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        Middleware(NulGuard),
    ]
