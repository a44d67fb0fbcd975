"""Response helpers shared by the routes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from genledger.gateway.services import Services


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content), status_code=status_code, headers=headers, media_type="application/json"
    )


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Headers of every server-sent event stream: no caching, no proxy buffering."""
