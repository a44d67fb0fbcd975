"""Response helpers shared by the routes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from genledger.api.headers import header
from genledger.api.request_log import request_id_of, summary_of
from genledger.api.router import app_of
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
    """What the headers say about the caller, for the record (OpenRouter's attribution headers)."""
    return RequestContext(
        received_at=received_at,
        http_referer=header(request, b"http-referer") or header(request, b"referer"),
        user_agent=header(request, b"user-agent"),
        app_title=header(request, b"x-title") or header(request, b"x-openrouter-title"),
        request_id=request_id_of(request.scope),
        summary=summary_of(request.scope),
    )
