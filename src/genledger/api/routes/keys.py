"""The calling key (GET /key, GET /credits) and the management API (/keys)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.key_wire import (
    KeyUsage,
    credits_json,
    key_info_json,
    key_json,
    parse_key_create,
    parse_key_update,
)
from genledger.api.responses import json_response, services_of
from genledger.core.keys import KeyRecord
from genledger.errors import BadRequest, Forbidden, NotFound
from genledger.gateway.services import Services
from genledger.ledger import KeyExists


async def _usage(services: Services, key: KeyRecord) -> KeyUsage:
    now = datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    store = services.ledger.generations
    return KeyUsage(
        daily=await store.usage_since(key.id, day),
        weekly=await store.usage_since(key.id, day - timedelta(days=day.weekday())),
        monthly=await store.usage_since(key.id, day.replace(day=1)),
    )


async def _fresh(services: Services, request: Request) -> KeyRecord:
    key = await services.auth.authenticate(request.headers.get("authorization"))
    # The authenticator's copy may be seconds old; limits and usage must be current.
    fresh = await services.ledger.keys.find_by_id(key.id)
    if fresh is None:
        raise NotFound("This key no longer exists")
    return fresh


async def current_key(request: Request) -> Response:
    services = services_of(request)
    key = await _fresh(services, request)
    limits = services.completions.admission.limits_for(key)
    data = key_info_json(
        key, await _usage(services, key), limits.requests_per_minute, limits.tokens_per_minute
    )
    return json_response({"data": data})


async def credits(request: Request) -> Response:
    services = services_of(request)
    return json_response({"data": credits_json(await _fresh(services, request))})


async def _manager(request: Request) -> Services:
    services = services_of(request)
    key = await services.auth.authenticate(request.headers.get("authorization"))
    if not key.is_management:
        raise Forbidden("Only management keys may manage keys (genledger keys create --management)")
    return services


async def _target(services: Services, request: Request) -> KeyRecord:
    key_hash = request.path_params["hash"]
    key = await services.ledger.keys.find_by_hash(key_hash)
    if key is None:
        raise NotFound(f"No key with hash {key_hash}")
    return key


async def list_keys(request: Request) -> Response:
    services = await _manager(request)
    keys = await services.ledger.keys.list()
    return json_response({"data": [key_json(key, await _usage(services, key)) for key in keys]})


async def create_key(request: Request) -> Response:
    services = await _manager(request)
    arguments = parse_key_create(await request.body())
    name = arguments.pop("name", None)
    if name is None:
        raise BadRequest("'name' is required", metadata={"param": "name"})
    try:
        key, secret = await services.ledger.keys.create(name, **arguments)
    except KeyExists as exc:
        raise BadRequest(str(exc), metadata={"param": "name"}) from None
    return json_response({"data": key_json(key, KeyUsage(0, 0, 0)), "key": secret}, status_code=201)


async def get_key(request: Request) -> Response:
    services = await _manager(request)
    key = await _target(services, request)
    return json_response({"data": key_json(key, await _usage(services, key))})


async def update_key(request: Request) -> Response:
    services = await _manager(request)
    target = await _target(services, request)
    changes = parse_key_update(await request.body())
    try:
        key = await services.ledger.keys.update(target.hash, **changes)
    except KeyExists as exc:
        raise BadRequest(str(exc), metadata={"param": "name"}) from None
    if key is None:
        raise NotFound(f"No key with hash {target.hash}")
    services.auth.forget(key.hash)
    return json_response({"data": key_json(key, await _usage(services, key))})


async def delete_key(request: Request) -> Response:
    services = await _manager(request)
    target = await _target(services, request)
    await services.ledger.keys.delete(target.hash)
    services.auth.forget(target.hash)
    return json_response({"deleted": True})
