"""GET /api/v1/models: the catalog with prices."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.responses import json_response, services_of
from genledger.api.wire import model_json


async def list_models(request: Request) -> Response:
    services = services_of(request)
    await services.auth.authenticate(request.headers.get("authorization"))
    return json_response({"data": [model_json(entry) for entry in services.catalog]})
