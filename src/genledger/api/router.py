"""The app: Starlette with one layer of middleware (``edge.Edge``) and a router that looks
a plain path up instead of matching every route before it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route
from starlette.routing import Router as StarletteRouter
from starlette.types import ASGIApp, Lifespan, Receive, Scope, Send

if TYPE_CHECKING:
    from genledger.api.worker_metrics import WorkerMetrics
    from genledger.gateway.services import Services
    from genledger.limits.auth_failures import AuthFailureCounter


class MethodNotAllowed(HTTPException):
    """A 405 whose ``Allow`` names every method of the routes at its path."""

    def __init__(self, allowed: str) -> None:
        super().__init__(405, headers={"Allow": allowed})


class Router(StarletteRouter):
    """Starlette's router, plus a table of the routes whose path has no parameter, by method
    and path: such a request (every inference call) costs one lookup, where Starlette tries
    each route's regular expression in turn. A route is in the table only if no route before
    it would take its requests, so the table never changes which route answers."""

    def __init__(self, routes: Sequence[BaseRoute], *, lifespan: Lifespan[Any] | None = None) -> None:
        super().__init__(routes, lifespan=lifespan)
        self._plain: dict[tuple[str, str], Route] = {}
        for index, route in enumerate(self.routes):
            if not isinstance(route, Route) or route.param_convertors or not route.methods:
                continue
            for method in route.methods:
                probe = {"type": "http", "method": method, "path": route.path, "root_path": ""}
                taken = any(earlier.matches(probe)[0] is Match.FULL for earlier in self.routes[:index])
                if not taken:
                    self._plain.setdefault((method, route.path), route)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._plain.get((scope["method"], get_route_path(scope))) if scope["type"] == "http" else None
        if route is None:
            try:
                await super().app(scope, receive, send)
            except HTTPException as exc:
                if exc.status_code != 405 or isinstance(exc, MethodNotAllowed):
                    raise  # (a mounted router's: it named its own routes' methods)
                # Starlette names the methods of the first route on the path only; a path
                # served by one route per method takes them all.
                raise MethodNotAllowed(self._allowed(scope)) from None
            return
        # What Starlette's Router.app and Route.handle do for a full match of a plain route.
        scope.setdefault("router", self)
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = dict(scope.get("path_params", {}))
        await route.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> str:
        """Every method a route at the request's path takes, for the ``Allow`` of its 405."""
        path = get_route_path(scope)
        methods = set[str]()
        for route in self.routes:
            if isinstance(route, Route) and route.methods and route.path_regex.match(path):
                methods |= route.methods
        return ", ".join(sorted(methods))


class App(Starlette):
    """Starlette, whose middleware stack is one ``edge(router)``: none of Starlette's own
    layers (the edge answers what its error and exception layers did).

    The gateway's ``services`` (set once they run), its counter of failed
    authentications and, in a worker of ``serve --workers``, its share of the workers'
    metrics (``api/worker_metrics.py``) are plain attributes, not entries of Starlette's ``app.state``: a read
    of ``state.x`` first fails the ordinary lookup (an AttributeError made and dropped) and
    then calls ``State.__getattr__``, and every request reads the services.
    """

    services: Services | None = None
    auth_failures: AuthFailureCounter | None = None
    worker_metrics: WorkerMetrics | None = None

    def __init__(
        self,
        routes: Sequence[BaseRoute],
        *,
        edge: Callable[[ASGIApp], ASGIApp],
        lifespan: Lifespan[Any] | None = None,
    ) -> None:
        super().__init__(lifespan=lifespan)
        self.router = Router(routes, lifespan=lifespan)
        self._edge = edge

    def build_middleware_stack(self) -> ASGIApp:
        return self._edge(self.router)


def app_of(request: Request) -> App:
    """The app that ``request`` came to (Starlette types it as any app)."""
    app: App = request.app
    return app
