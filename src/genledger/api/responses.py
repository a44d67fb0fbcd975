"""Response helpers shared by the routes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from genledger.api.headers import header
from genledger.api.request_log import request_id_of, summary_of
from genledger.api.router import app_of
from genledger.core.generation import MAX_APP_TITLE, MAX_HTTP_REFERER, MAX_USER_AGENT
from genledger.errors import BadRequest
from genledger.gateway.completions import RequestContext
from genledger.gateway.services import Services


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content), status_code=status_code, headers=headers, media_type="application/json"
    )


def services_of(request: Request) -> Services:
    services = app_of(request).services
    assert services is not None, "a route ran before the app started"
    return services


def request_context(request: Request, received_at: float) -> RequestContext:
    """What the headers say about the caller, for the record (OpenRouter's attribution headers);
    a 400 naming one longer than the record holds."""
    return RequestContext(
        received_at=received_at,
        http_referer=_bounded(request, MAX_HTTP_REFERER, b"http-referer", b"referer"),
        user_agent=_bounded(request, MAX_USER_AGENT, b"user-agent"),
        app_title=_bounded(request, MAX_APP_TITLE, b"x-title", b"x-openrouter-title"),
        request_id=request_id_of(request.scope),
        summary=summary_of(request.scope),
    )


_HEADER_NAMES = {
    b"http-referer": "HTTP-Referer",
    b"referer": "Referer",
    b"user-agent": "User-Agent",
    b"x-title": "X-Title",
    b"x-openrouter-title": "X-OpenRouter-Title",
}


def _bounded(request: Request, limit: int, *names: bytes) -> str | None:
    """The first of the headers ``names`` the request sets, as ``a or b`` reads it; a 400
    naming it when longer than ``limit`` characters."""
    value = None
    for name in names:
        value = header(request, name)
        if value:
            if len(value) > limit:
                shown = _HEADER_NAMES[name]
                raise BadRequest(f"'{shown}' must be at most {limit} characters", metadata={"param": shown})
            break
    return value
