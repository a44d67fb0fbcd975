"""GET /api/v1/models (and /models/user, the same catalog): the catalog with prices."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.responses import json_response, services_of
from genledger.api.wire import models_json


async def list_models(request: Request) -> Response:
    services = services_of(request)
    await services.auth.authenticate(request.headers.get("authorization"))
    return json_response(models_json(list(services.catalog)))


# OpenRouter filters /models/user by the account's provider preferences; genledger has none, so
# a key sees the whole catalog there too.
list_models_for_user = list_models
