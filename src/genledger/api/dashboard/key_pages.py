"""The keys pages: every key's limits and usage (management keys), one key's days, and changes.

Forms go through the management API's own grammar (``key_create_arguments``,
``key_update_changes``) and use case (``KeyManager``), so a bad value is refused exactly as
``POST /api/v1/keys`` would refuse it, naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from genledger.api.dashboard.base import form_of, page, render, visitor
from genledger.api.dashboard.charts import usage_chart
from genledger.api.inbound import only_query
from genledger.api.key_wire import key_create_arguments, key_update_changes, limit_remaining
from genledger.core.credits import LIMIT_RESETS
from genledger.core.keys import KeyRecord
from genledger.errors import BadRequest

USAGE_DAYS = 30
_ACTIONS = ("disable", "enable", "limit", "rate_limits")


def _optional(fields: dict[str, str], name: str) -> str | None:
    value = fields.get(name, "").strip()
    return value or None


def _per_minute(fields: dict[str, str], name: str) -> int | str | None:
    value = _optional(fields, name)
    # ASCII digits only (int() refuses "²", which str.isdigit() takes); a long one is refused by
    # the API's own check rather than converted here.
    return (
        int(value) if value is not None and value.isascii() and value.isdigit() and len(value) < 20 else value
    )


def _limits(fields: dict[str, str]) -> dict[str, Any]:
    return {"limit": _optional(fields, "limit"), "limit_reset": _optional(fields, "limit_reset")}


def _rate_limits(fields: dict[str, str]) -> dict[str, Any]:
    return {name: _per_minute(fields, name) for name in ("requests_per_minute", "tokens_per_minute")}


@page
async def keys(request: Request) -> Response:
    only_query(request.query_params, ())
    who = await visitor(request)
    if not who.key.is_management:
        own = await who.services.keys.current(who.key)
        return render(request, "own_key.html", visitor=who, is_management=False, view=own, **_key_helpers())
    views = await who.services.keys.list(who.key)
    return render(
        request,
        "keys.html",
        visitor=who,
        is_management=True,
        views=views,
        resets=LIMIT_RESETS,
        **_key_helpers(),
    )


def _key_helpers() -> dict[str, Any]:
    """What the key pages show of a key as of now: its credit left, and its state."""
    now = datetime.now(UTC)

    def state(key: KeyRecord) -> str:
        return "disabled" if key.disabled else "expired" if key.expired(now) else "enabled"

    return {"remaining": lambda key: limit_remaining(key, now), "state": state}


@page
async def create(request: Request) -> Response:
    who = await visitor(request)
    who.services.keys.require_management(who.key)
    fields = await form_of(request, who)
    body: dict[str, Any] = {
        "name": fields.get("name", ""),
        **_limits(fields),
        **_rate_limits(fields),
        "management": fields.get("management") == "on",
    }
    if label := _optional(fields, "label"):
        body["label"] = label
    view, secret = await who.services.keys.create(who.key, key_create_arguments(body))
    return render(
        request,
        "key_created.html",
        status_code=201,
        visitor=who,
        is_management=True,
        view=view,
        secret=secret,
    )


@page
async def key(request: Request) -> Response:
    only_query(request.query_params, ())
    who = await visitor(request)
    view = await who.services.keys.get(who.key, request.path_params["hash"])
    days = await who.services.keys.usage_by_day(who.key, view.key.hash, USAGE_DAYS)
    return render(
        request,
        "key.html",
        visitor=who,
        is_management=True,
        view=view,
        days=days,
        chart=usage_chart(days),
        resets=LIMIT_RESETS,
        **_key_helpers(),
    )


@page
async def change(request: Request) -> Response:
    who = await visitor(request)
    who.services.keys.require_management(who.key)
    fields = await form_of(request, who)
    action = fields.get("action")
    if action not in _ACTIONS:
        raise BadRequest(f"'action' must be one of {', '.join(_ACTIONS)}", metadata={"param": "action"})
    body: dict[str, Any]
    if action in ("disable", "enable"):
        body = {"disabled": action == "disable"}
    elif action == "limit":
        body = _limits(fields)
    else:
        body = _rate_limits(fields)
    view = await who.services.keys.update(who.key, request.path_params["hash"], key_update_changes(body))
    back = fields.get("back")
    target = "/dashboard/keys" if back == "list" else f"/dashboard/keys/{quote(view.key.hash)}"
    return RedirectResponse(target, status_code=303)
