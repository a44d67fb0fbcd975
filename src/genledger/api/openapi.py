"""The OpenAPI 3.1 document, built from the route table's operations and their wire models.

:func:`document` walks the routes: each :class:`~genledger.api.operation.DocumentedRoute`
gives a path and method; its :class:`~genledger.api.operation.Operation` gives the rest.
The models' JSON Schemas (pydantic's, draft 2020-12, which OpenAPI 3.1 takes as is) become
``components.schemas``, referenced by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute

from genledger.api.operation import DocumentedRoute, Operation, Reply
from genledger.api.request_log import MAX_REQUEST_ID

OPENAPI_PATH = "/api/v1/openapi.json"
OPERATIONS_TAG = "Operations"
_REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key: `Bearer sk-gl-...`."},
    "x-api-key": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "An API key as Anthropic's SDKs send it (`/messages` only).",
    },
}

DESCRIPTION = """\
genledger is a self-hosted LLM gateway that records what every model call did and cost.
Its API is OpenRouter's (and OpenAI's and Anthropic's formats for inference) where they
have an operation, with genledger's extensions marked as such.

Every error is `{"error": {"code", "message", "metadata"}}` with `code` equal to the HTTP
status (on `/messages`, Anthropic's `{"type": "error", "error": {...}}`). A `500` never
carries internals. `502`, `524` and `529` say the upstream provider failed, `503` that the
gateway is shutting down.

Not described here: the dashboard (`/dashboard`), server-rendered HTML pages for people,
signed in with a management key through a form, not an API; and `/docs/static/*`, the
assets of `/docs`.
"""


Refs = Mapping[tuple[Any, JsonSchemaMode], Any]
"""Each model's reference into ``components.schemas``, as pydantic named it."""


def _schema(refs: Refs, model: type[BaseModel] | None, media_type: str) -> dict[str, Any]:
    if model is not None:
        mode: JsonSchemaMode = "validation" if (model, "validation") in refs else "serialization"
        return dict(refs[(model, mode)])
    return {"type": "object"} if media_type == "application/json" else {"type": "string"}


_REQUEST_ID_SCHEMA = {"type": "string", "pattern": f"^[\\x21-\\x7e]{{1,{MAX_REQUEST_ID}}}$"}
REQUEST_ID_PARAM = {
    "name": "X-Request-Id",
    "in": "header",
    "required": False,
    "description": "The request's id, recorded as the generation's `request_id` and logged; "
    f"one of 1 to {MAX_REQUEST_ID} visible ASCII characters is kept, anything else replaced.",
    "schema": {"type": "string"},
}
REQUEST_ID_HEADER = {
    "description": "The request's id: the caller's `X-Request-Id`, or a new one.",
    "required": True,
    "schema": _REQUEST_ID_SCHEMA,
}


def _reply(refs: Refs, reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.content:
        out["content"] = {media: {"schema": _schema(refs, m, media)} for media, m in reply.content.items()}
    out["headers"] = {
        "X-Request-Id": REQUEST_ID_HEADER,
        **{
            h.name: {"description": h.description, "required": h.required, "schema": dict(h.schema)}
            for h in reply.headers
        },
    }
    return out


def _operation(refs: Refs, operation: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
    }
    if operation.description:
        out["description"] = operation.description
    out["parameters"] = [
        *(
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "description": p.description,
                "schema": dict(p.schema),
            }
            for p in operation.params
        ),
        REQUEST_ID_PARAM,
    ]
    if operation.body is not None:
        media: dict[str, Any] = {"schema": _schema(refs, operation.body, "application/json")}
        if operation.body_example is not None:
            media["example"] = dict(operation.body_example)
        out["requestBody"] = {"required": True, "content": {"application/json": media}}
    out["responses"] = {
        str(status): _reply(refs, reply) for status, reply in sorted(operation.replies.items())
    }
    out["security"] = [{scheme: []} for scheme in operation.security]
    return out


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    seen: dict[type[BaseModel], JsonSchemaMode] = {}
    for operation in operations:
        if operation.body is not None:
            seen[operation.body] = "validation"
        for reply in operation.replies.values():
            for model in reply.content.values():
                if model is not None:
                    seen.setdefault(model, "serialization")
    return list(seen.items())


def document(routes: Iterable[BaseRoute], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route in ``routes``."""
    documented = [r for r in routes if isinstance(r, DocumentedRoute)]
    refs, schemas = models_json_schema(_models(r.operation for r in documented), ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for r in documented:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(refs, r.operation)
    tags = list(dict.fromkeys(r.operation.tag for r in documented))
    tags.sort(key=lambda tag: tag == OPERATIONS_TAG)  # the API first, the gateway's own last
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "genledger",
            "version": version,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
