"""What one route promises: an :class:`Operation`, attached to its route in the route table.

The OpenAPI document (:mod:`genledger.api.openapi`) is built from these and from the wire
models they name; nothing in the document is written by hand, and :func:`undocumented`
lets ``create_app`` refuse a route table with a route that has no operation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route

from genledger.api.inbound import only_query
from genledger.core.records import record

JSON = "application/json"
API_PREFIX = "/api/v1/"


@record
class Param:
    """A query or path parameter: its JSON Schema and what it means."""

    name: str
    schema: Mapping[str, Any]
    description: str
    required: bool = False
    where: str = "query"


@record
class Header:
    """A response header: ``required`` when every response of its status carries it."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@record
class Reply:
    """One status of an operation: its body's model per media type (None: a text body)."""

    description: str
    content: Mapping[str, type[BaseModel] | None] = field(default_factory=dict)
    headers: tuple[Header, ...] = ()


@record
class Operation:
    """One route's contract. ``security``: the schemes any one of which it takes a key by
    (``bearer``, ``x-api-key``); none: it takes no key."""

    operation_id: str
    summary: str
    tag: str
    replies: Mapping[int, Reply]
    description: str = ""
    body: type[BaseModel] | None = None
    body_example: Mapping[str, Any] | None = None
    params: tuple[Param, ...] = ()
    security: tuple[str, ...] = ("bearer",)
    # Its handler takes query names beyond ``params`` (``metadata[<key>]``) and refuses the
    # ones it does not know itself; any other GET under the API has them refused for it.
    open_query: bool = False

    @property
    def query(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params if p.where == "query")


def _query_checked(endpoint: Callable[..., Any], known: frozenset[str]) -> Callable[..., Any]:
    """``endpoint`` refusing a query parameter it does not take with a 400 naming it."""

    @functools.wraps(endpoint)
    async def checked(request: Request) -> Any:
        only_query([name for name, _ in request.query_params.multi_items()], known)
        return await endpoint(request)

    return checked


class DocumentedRoute(Route):
    """A route of one method with the :class:`Operation` it implements."""

    def __init__(self, path: str, endpoint: Callable[..., Any], method: str, operation: Operation) -> None:
        if method == "GET" and path.startswith(API_PREFIX) and not operation.open_query:
            endpoint = _query_checked(endpoint, operation.query)
        super().__init__(path, endpoint, methods=[method])
        self.method = method
        self.operation = operation


def route(path: str, endpoint: Callable[..., Any], method: str, operation: Operation) -> DocumentedRoute:
    return DocumentedRoute(path, endpoint, method, operation)


def undocumented(routes: Iterable[BaseRoute]) -> list[str]:
    """Every route of ``routes`` without an operation (mounts, such as the dashboard, are exempt)."""
    return [
        f"{sorted(r.methods or ())} {r.path}"
        for r in routes
        if isinstance(r, Route) and not isinstance(r, DocumentedRoute) and not isinstance(r, Mount)
    ]
