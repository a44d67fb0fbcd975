"""The dashboard's pages: sign-in and out, the overview, the generations and one generation."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from genledger.api.dashboard.base import form_of, page, render, visitor
from genledger.api.dashboard.charts import cost_breakdown, drift_of, overview_chart
from genledger.api.dashboard.query import canonical, encode, without
from genledger.api.dashboard.render import amount
from genledger.api.dashboard.session import (
    end_session,
    sign_in_token,
    sign_in_token_matches,
    start_session,
)
from genledger.api.errors import auth_failed
from genledger.api.export_wire import MEDIA_TYPES, export_filename
from genledger.api.export_wire import render as render_export
from genledger.api.generation_wire import USD_KEYS, generation_json
from genledger.api.inbound import only_query
from genledger.api.list_wire import MAX_PAGE, encode_cursor, parse_export_query, parse_list_query
from genledger.api.responses import services_of
from genledger.core.generation import Generation
from genledger.core.money import usd_to_pico
from genledger.core.pricing import Price
from genledger.errors import BadRequest, NotFound, Unauthorized
from genledger.gateway.catalog import ModelEntry
from genledger.gateway.overview import Window

_MAX_SECRET = 256


@page
async def home(request: Request) -> Response:
    only_query(request.query_params, ())
    await visitor(request)
    return RedirectResponse("/dashboard/overview", status_code=303)


async def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request, None, 200)


def _sign_in_page(request: Request, error: str | None, status: int) -> Response:
    """The sign-in form with its CSRF token (a new one in a signed cookie when there is none)."""
    cookies = Response()
    token = sign_in_token(request, cookies, services_of(request).dashboard_secret)
    response = render(
        request, "sign_in.html", status_code=status, error=error, csrf=token, is_management=None
    )
    for name, value in cookies.headers.items():
        if name == "set-cookie":
            response.headers.append("set-cookie", value)
    return response


async def sign_in(request: Request) -> Response:
    services = services_of(request)
    fields = await form_of(request)
    if not sign_in_token_matches(request, services.dashboard_secret, fields.get("csrf")):
        return _sign_in_page(request, "This form has expired: please sign in again.", 403)
    secret = fields.get("key", "").strip()
    if not secret or len(secret) > _MAX_SECRET:
        return _sign_in_page(request, "Enter a genledger key.", 400)
    try:
        key = await services.auth.authenticate(f"Bearer {secret}")
    except Unauthorized as error:
        await auth_failed(request)
        return _sign_in_page(request, f"That key cannot sign in: {error.message}", 401)
    response = RedirectResponse("/dashboard/overview", status_code=303)
    start_session(request, response, services.dashboard_secret, key.hash)
    return response


@page
async def not_found(request: Request) -> Response:
    """Any other path under the dashboard: its 404 is a page too, like every dashboard error."""
    raise NotFound(f"No dashboard page at {request.url.path}")


@page
async def sign_out(request: Request) -> Response:
    await form_of(request, await visitor(request))
    response = RedirectResponse("/dashboard/sign-in", status_code=303)
    end_session(response)
    return response


@page
async def overview(request: Request) -> Response:
    only_query(request.query_params, ("window",))
    who = await visitor(request)
    raw = request.query_params.get("window", Window.DAY.value)
    if raw not in Window.__members__.values():
        raise BadRequest(
            f"'window' must be one of {', '.join(w.value for w in Window)}", metadata={"param": "window"}
        )
    summary = await who.services.overview.overview(who.key, Window(raw))
    return render(
        request,
        "overview.html",
        visitor=who,
        is_management=who.key.is_management,
        overview=summary,
        windows=[w.value for w in Window],
        chart=overview_chart(summary),
    )


@page
async def generations(request: Request) -> Response:
    who = await visitor(request)
    pairs = list(request.query_params.multi_items())
    cleaned = canonical(pairs)
    if cleaned is not None:
        query_string = encode(cleaned)
        return RedirectResponse(f"/dashboard/generations{'?' if query_string else ''}{query_string}", 303)
    query = parse_list_query(request.query_params, [name for name, _ in request.query_params.multi_items()])
    found = await who.services.reads.list(
        who.key, query.where, limit=query.limit, after=query.after, api_key_hash=query.api_key_hash
    )
    filters = without(pairs, "cursor")
    keys = await who.services.keys.records(who.key) if who.key.is_management else []
    names = {key.id: key.name for key in keys}
    next_query = encode([*filters, ("cursor", encode_cursor(found.next))]) if found.next else None
    return render(
        request,
        "generations.html",
        visitor=who,
        is_management=who.key.is_management,
        items=found.items,
        key_names=names,
        keys=keys,
        params=dict(request.query_params),
        where=query.where,
        api_key_hash=query.api_key_hash,
        metadata=list(query.where.metadata),
        filters_query=encode(filters),
        export_query=encode(without(filters, "limit")),
        next_query=next_query,
        paged=query.after is not None,
        max_page=MAX_PAGE,
    )


@page
async def generation(request: Request) -> Response:
    only_query(request.query_params, ())
    who = await visitor(request)
    found = await who.services.reads.get(who.key, request.path_params["id"])
    owner = None
    if who.key.is_management:
        owner = next((k for k in await who.services.keys.records(who.key) if k.id == found.key_id), None)
    entry = next((e for e in who.services.catalog if e.slug == found.model), None)
    entries = (await who.services.generations.adjustments_of([found.id])).get(found.id, ())
    tolerance = usd_to_pico(who.services.settings.audit.cost_tolerance)
    return render(
        request,
        "generation.html",
        visitor=who,
        is_management=who.key.is_management,
        generation=found,
        fields=_fields(found),
        owner=owner,
        cost=cost_breakdown(found, _price_of(entry, found)),
        adjustments=entries,
        adjusted_pico=found.total_cost_pico + sum(a.amount_pico for a in entries),
        drift=drift_of(found, tolerance),
    )


@page
async def export(request: Request) -> Response:
    who = await visitor(request)
    query = parse_export_query(request.query_params, [name for name, _ in request.query_params.multi_items()])
    batches = await who.services.reads.export(
        who.key, query.where, batch=MAX_PAGE, api_key_hash=query.api_key_hash
    )
    return StreamingResponse(
        render_export(batches, query.format, who.services.reads.notes),
        media_type=MEDIA_TYPES[query.format],
        headers={"Content-Disposition": f'attachment; filename="{export_filename(query.format)}"'},
    )


def _price_of(entry: ModelEntry | None, generation: Generation) -> Price | None:
    """What ``generation`` is charged at now: its model's current version, at the price of the
    endpoint that served it (a fallback may charge otherwise)."""
    if entry is None:
        return None
    return entry.version.price_for(generation.provider_name) if entry.version is not None else entry.price


def _fields(generation: Generation) -> dict[str, Any]:
    """The record as the API answers it, money as exact USD from the picodollars (``0.000064``,
    not the JSON float's ``6.4e-05``)."""
    return {
        name: amount(getattr(generation, USD_KEYS[name])) if name in USD_KEYS and value is not None else value
        for name, value in generation_json(generation).items()
    }
