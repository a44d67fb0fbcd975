"""GET /api/v1/activity: spending per day, model and provider (or per ``group_by``)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.activity_wire import activity_json, parse_activity_query
from genledger.api.headers import header
from genledger.api.responses import json_response, services_of


async def get_activity(request: Request) -> Response:
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    today = datetime.now(UTC).date()
    query = parse_activity_query(request.query_params, list(request.query_params.keys()), today)
    rows = await services.reads.activity(key, query.where, query.group_by, api_key_hash=query.api_key_hash)
    return json_response(activity_json(query, rows))
