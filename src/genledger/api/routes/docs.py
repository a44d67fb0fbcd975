"""GET /api/v1/openapi.json (the contract) and GET /docs (it, for people)."""

from __future__ import annotations

from importlib.metadata import version

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.docs import CONTENT_SECURITY_POLICY, PAGE
from genledger.api.openapi import document
from genledger.api.responses import json_response


async def openapi_json(request: Request) -> Response:
    state = request.app.state
    if getattr(state, "openapi", None) is None:
        # Built on first use, then kept: the routes do not change while the app runs.
        state.openapi = document(request.app.routes, version("genledger"))
    return json_response(state.openapi)


async def docs_page(_request: Request) -> Response:
    return Response(
        PAGE.read_bytes(),
        media_type="text/html",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )
