"""HTML for the dashboard: the Jinja environment, its filters, and the headers every page has.

Autoescaping is on for every template, so a model name, a user id or a metadata value is
always text. No page has inline script or style: the Content-Security-Policy forbids both.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genledger.core.money import to_decimal

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def usd(pico: int | None) -> str:
    """Picodollars as exact dollars: at least 2 decimals, at most the 12 a picodollar needs."""
    if pico is None:
        return "—"
    text = f"{to_decimal(pico):,.12f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def json_value(value: Any) -> str:
    """A contract field's value as its JSON text (strings as they are)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def amount(pico: int) -> str:
    """Picodollars as a plain USD number a form field can send back: ``12.5``."""
    return format(to_decimal(pico).normalize(), "f")


def milliseconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_utc(value: datetime) -> str:
    """An aware datetime as the list API reads it back: ISO 8601 in UTC, with its microseconds
    when it has any (``2026-11-28T09:09:30.123456Z``)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def share(value: float) -> str:
    return f"{value:.1%}"


def environment() -> jinja2.Environment:
    """The dashboard's Jinja2 environment (imported here: a gateway that serves no page never loads it)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        usd=usd,
        amount=amount,
        json_value=json_value,
        ms=milliseconds,
        when=when,
        iso_utc=iso_utc,
        share=share,
    )
    return env


class SecurityHeaders:
    """Pure ASGI: the CSP and friends on every dashboard response; no caching of pages; and
    ``Server-Timing: app;dur=MS``, the time the gateway took until the response began (for a
    page, the whole of it: pages are rendered before they are sent)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/dashboard/static/")
        started = time.perf_counter()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers.append((b"server-timing", f"app;dur={elapsed_ms:.2f}".encode()))
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
