"""The calling key (GET /key, GET /credits) and the management API (/keys)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.headers import header
from genledger.api.key_wire import (
    credits_json,
    key_info_json,
    key_json,
    parse_key_create,
    parse_key_list_query,
    parse_key_update,
)
from genledger.api.responses import json_response, services_of
from genledger.core.keys import KeyRecord
from genledger.gateway.services import Services


async def _caller(request: Request) -> tuple[Services, KeyRecord]:
    services = services_of(request)
    return services, await services.auth.authenticate(header(request, b"authorization"))


async def current_key(request: Request) -> Response:
    services, caller = await _caller(request)
    return json_response({"data": key_info_json(await services.keys.current(caller))})


async def credits(request: Request) -> Response:
    services, caller = await _caller(request)
    return json_response({"data": credits_json((await services.keys.current(caller)).key)})


async def list_keys(request: Request) -> Response:
    services, caller = await _caller(request)
    include_disabled, offset = parse_key_list_query(request.query_params)
    views = [view for view in await services.keys.list(caller) if include_disabled or not view.key.disabled]
    return json_response({"data": [key_json(view) for view in views[offset:]]})


async def create_key(request: Request) -> Response:
    services, caller = await _caller(request)
    services.keys.require_management(caller)  # a 403 before any complaint about the body
    arguments = parse_key_create(await request.body())
    view, secret = await services.keys.create(caller, arguments)
    return json_response({"data": key_json(view), "key": secret}, status_code=201)


async def get_key(request: Request) -> Response:
    services, caller = await _caller(request)
    return json_response({"data": key_json(await services.keys.get(caller, request.path_params["hash"]))})


async def update_key(request: Request) -> Response:
    services, caller = await _caller(request)
    services.keys.require_management(caller)
    changes = parse_key_update(await request.body())
    view = await services.keys.update(caller, request.path_params["hash"], changes)
    return json_response({"data": key_json(view)})


async def delete_key(request: Request) -> Response:
    services, caller = await _caller(request)
    await services.keys.delete(caller, request.path_params["hash"])
    return json_response({"deleted": True})
