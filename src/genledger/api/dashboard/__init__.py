"""The web dashboard at ``/dashboard``: server-rendered pages over the gateway's use cases.

Pages are Jinja templates (``templates/``); the one script and the charting library are
static files (``static/``), served by the gateway itself: no build step, no CDN. Every
response carries a strict Content-Security-Policy (:class:`~.render.SecurityHeaders`).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from genledger.api.dashboard import key_pages, pages
from genledger.api.dashboard.render import STATIC, SecurityHeaders, environment
from genledger.api.router import Router

PREFIX = "/dashboard"


class _Static(StaticFiles):
    """The dashboard's files; a missing one is a plain 404 answered inside the dashboard, so it
    carries the CSP like every dashboard response (StaticFiles raises it to the app instead)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


def dashboard_mount() -> Mount:
    return Mount(
        PREFIX,
        app=Router(
            [
                Route("/", pages.home, methods=["GET"]),
                Route("/sign-in", pages.sign_in_form, methods=["GET"]),
                Route("/sign-in", pages.sign_in, methods=["POST"]),
                Route("/sign-out", pages.sign_out, methods=["POST"]),
                Route("/overview", pages.overview, methods=["GET"]),
                Route("/generations", pages.generations, methods=["GET"]),
                # Before /generations/{id}, which would otherwise take "export".
                Route("/generations/export", pages.export, methods=["GET"]),
                Route("/generations/{id}", pages.generation, methods=["GET"]),
                Route("/keys", key_pages.keys, methods=["GET"]),
                Route("/keys", key_pages.create, methods=["POST"]),
                Route("/keys/{hash}", key_pages.key, methods=["GET"]),
                Route("/keys/{hash}", key_pages.change, methods=["POST"]),
                Mount("/static", app=_Static(directory=STATIC), name="static"),
                # Last, GET only (another method on a page's path stays a 405): any other page.
                Route("/{path:path}", pages.not_found, methods=["GET"]),
            ]
        ),
        middleware=[Middleware(SecurityHeaders)],
    )


__all__ = ["PREFIX", "dashboard_mount", "environment"]
