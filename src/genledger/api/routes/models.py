"""The catalog: GET /api/v1/models (and /models/user), one model, its endpoints, the count, providers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.catalog_wire import count_json, endpoints_json, model_response_json, providers_json
from genledger.api.headers import header
from genledger.api.responses import json_response, services_of
from genledger.api.wire import models_json, parse_models_page
from genledger.errors import NotFound
from genledger.gateway.catalog import ModelEntry
from genledger.gateway.services import Services


async def list_models(request: Request) -> Response:
    services = services_of(request)
    await services.auth.authenticate(header(request, b"authorization"))
    offset, limit = parse_models_page(request.query_params)
    return json_response(models_json(list(services.catalog), offset, limit, request.url.path))


async def count_models(request: Request) -> Response:
    services = services_of(request)
    await services.auth.authenticate(header(request, b"authorization"))
    return json_response(count_json(services.catalog))


def _entry(services: Services, request: Request) -> ModelEntry:
    slug = f"{request.path_params['author']}/{request.path_params['slug']}"
    entry = services.catalog.get(slug)
    if entry is None:
        raise NotFound(f"Model {slug} not found", metadata={"model": slug})
    return entry


async def get_model(request: Request) -> Response:
    services = services_of(request)
    await services.auth.authenticate(header(request, b"authorization"))
    return json_response(model_response_json(_entry(services, request)))


async def list_endpoints(request: Request) -> Response:
    services = services_of(request)
    await services.auth.authenticate(header(request, b"authorization"))
    entry = _entry(services, request)
    body = endpoints_json(entry, services.providers, services.breakers, services.completions.measurements)
    return json_response(body)


async def list_providers(request: Request) -> Response:
    services = services_of(request)
    await services.auth.authenticate(header(request, b"authorization"))
    return json_response(providers_json(services.providers))


async def list_embedding_models(request: Request) -> Response:
    services = services_of(request)
    await services.auth.authenticate(header(request, b"authorization"))
    offset, limit = parse_models_page(request.query_params)
    embedding = [entry for entry in services.catalog if entry.kind == "embeddings"]
    return json_response(models_json(embedding, offset, limit, request.url.path))


# OpenRouter filters /models/user by the account's provider preferences; genledger has none, so
# a key sees the whole catalog there too.
list_models_for_user = list_models
