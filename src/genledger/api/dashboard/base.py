"""What every dashboard handler shares: who is signed in, forms, and rendering a page.

A handler wrapped in :func:`page` answers a gateway error as an HTML page with the error's
status and message (never a traceback), and an expired or missing session by sending the
browser to the sign-in page.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from genledger.api.dashboard.render import environment
from genledger.api.dashboard.session import Session, csrf_matches, end_session, read_session
from genledger.api.responses import services_of
from genledger.core.keys import KeyRecord
from genledger.core.records import record
from genledger.errors import BadRequest, Forbidden, GatewayError, Unauthorized
from genledger.gateway.services import Services

if TYPE_CHECKING:
    import jinja2

SIGN_IN_PATH = "/dashboard/sign-in"
Handler = Callable[[Request], Awaitable[Response]]


class SignInFirst(Exception):
    """No valid session: the browser goes to the sign-in page."""


@record
class Visitor:
    """A signed-in request: the gateway's services, the key, and its session."""

    services: Services
    key: KeyRecord
    session: Session


def templates(request: Request) -> jinja2.Environment:
    """The dashboard's templates, loaded at its first page (Jinja2 is not imported before)."""
    state = request.app.state
    env: jinja2.Environment | None = getattr(state, "dashboard_templates", None)
    if env is None:
        env = state.dashboard_templates = environment()
    return env


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = templates(request).get_template(name).render(request_path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


async def visitor(request: Request) -> Visitor:
    services = services_of(request)
    session = read_session(request, services.dashboard_secret)
    if session is None:
        raise SignInFirst
    try:
        key = await services.auth.by_hash(session.key_hash)
    except Unauthorized:
        raise SignInFirst from None
    return Visitor(services, key, session)


async def form_of(request: Request, visitor: Visitor | None = None) -> dict[str, str]:
    """A urlencoded form's fields (the last value of each); 403 unless its CSRF token is the session's."""
    raw = await request.body()
    if raw.find(b"%00") != -1:  # as the API's nul_guard (and why `find`): PostgreSQL's text cannot hold NUL
        raise BadRequest("The form contains a NUL character (%00), which genledger cannot store")
    try:
        fields = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        fields = {}
    if visitor is not None and not csrf_matches(visitor.session, fields.get("csrf")):
        raise Forbidden("This form has expired or did not come from this dashboard: reload the page")
    return fields


def page(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except SignInFirst:
            response = RedirectResponse(SIGN_IN_PATH, status_code=303)
            end_session(response)
            return response
        except GatewayError as error:
            return render(
                request,
                "error.html",
                status_code=error.status,
                status=error.status,
                message=error.message,
                param=(error.metadata or {}).get("param"),
                is_management=None,
            )

    return answer
