"""Keys on the wire: OpenRouter's shapes for /key, /credits and the management API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from genledger.api.inbound import load_object, query_int
from genledger.core.credits import LIMIT_RESETS, next_period_start, period_start
from genledger.core.instants import OutOfRange, parse_utc
from genledger.core.keys import KeyRecord, key_name
from genledger.core.money import MAX_LIMIT_USD, PriceError, limit_to_pico, to_usd
from genledger.errors import BadRequest
from genledger.gateway.keys import KeyView

MAX_PER_MINUTE = 2**31 - 1
"""The largest rate limit a key may have: its column is a 32-bit integer on PostgreSQL."""
# genledger has no workspaces: every key is in the gateway's one implicit workspace. OpenRouter's
# key shapes require a workspace id string, so this one is named, and documented in the README.
WORKSPACE_ID = "default"


def _used_in_period(key: KeyRecord, now: datetime) -> int:
    current = period_start(key.limit_reset, now)
    if current is not None and (key.period_start is None or key.period_start < current):
        return 0  # a new period began and no request has been charged in it yet
    return key.limited_usage_pico


def limit_remaining(key: KeyRecord, now: datetime) -> int | None:
    if key.limit_pico is None:
        return None
    return max(key.limit_pico - _used_in_period(key, now), 0)


def _usd(pico: int | None) -> float | None:
    return None if pico is None else to_usd(pico)


def rate_limit_json(requests_per_minute: int, tokens_per_minute: int) -> dict[str, Any]:
    return {
        "requests": requests_per_minute or -1,
        "interval": "1m",
        "tokens": tokens_per_minute or -1,
        "note": "per key; -1 means no limit",
    }


def _limits_and_usage(view: KeyView) -> dict[str, Any]:
    key, usage = view.key, view.usage
    return {
        "label": key.label,
        "limit": _usd(key.limit_pico),
        "limit_remaining": _usd(limit_remaining(key, datetime.now(UTC))),
        "limit_reset": key.limit_reset,
        "include_byok_in_limit": key.include_byok_in_limit,
        "usage": to_usd(key.usage_pico),
        "usage_daily": to_usd(usage.daily),
        "usage_weekly": to_usd(usage.weekly),
        "usage_monthly": to_usd(usage.monthly),
        "byok_usage": 0.0,
        "is_management_key": key.is_management,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        # An extension: credit held by requests in flight (limit_remaining does not subtract it).
        "reserved_in_flight": to_usd(key.reserved_pico),
    }


# Concepts of OpenRouter's accounts that a self-hosted gateway does not have: no BYOK spend, no
# creator user, organization or external user (see the README's conformance table).
_NO_BYOK = {"byok_usage_daily": 0.0, "byok_usage_weekly": 0.0, "byok_usage_monthly": 0.0}
_NO_ACCOUNT = {"creator_user_id": None, "workspace_id": WORKSPACE_ID}


def key_json(view: KeyView) -> dict[str, Any]:
    """A key as the management API shows it: never its secret."""
    key = view.key
    return {
        "hash": key.hash,
        "name": key.name,
        "disabled": key.disabled,
        **_limits_and_usage(view),
        **_NO_BYOK,
        **_NO_ACCOUNT,
        "external_user": None,
        "last_used_at": view.last_used_at.isoformat() if view.last_used_at else None,
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "store_content": key.store_content,
        "created_at": key.created_at.isoformat(),
        "updated_at": key.updated_at.isoformat() if key.updated_at else None,
    }


def key_budget_json(key: KeyRecord, now: datetime) -> dict[str, Any] | None:
    """The key's own limit as OpenRouter's ``key_limit`` budget layer; None without a limit."""
    if key.limit_pico is None:
        return None
    used = _used_in_period(key, now)
    resets_at = next_period_start(key.limit_reset, now)
    return {
        "scope": "key_limit",
        "budget_id": None,
        "guardrail_id": None,
        "include_byok": False,
        "limit_usd": to_usd(key.limit_pico),
        "spend_usd": to_usd(used),
        # OpenRouter's definition: may go negative when the last request overshot the limit.
        "remaining_usd": to_usd(key.limit_pico - used),
        "reset_interval": key.limit_reset,
        "resets_at": resets_at.isoformat() if resets_at else None,
    }


def key_info_json(view: KeyView) -> dict[str, Any]:
    """``GET /key``: the calling key's limits, usage and effective rate limits."""
    budget = key_budget_json(view.key, datetime.now(UTC))
    return {
        **_limits_and_usage(view),
        **_NO_BYOK,
        **_NO_ACCOUNT,
        "organization_id": None,
        "allowed_data_regions": [],
        "budgets": [budget] if budget is not None else [],
        "effective_budget": budget,
        # genledger has no free-model quota (no ``:free`` variants): nothing allowed, nothing used.
        "free_model_daily_requests": {"limit": 0, "remaining": 0, "used": 0},
        "is_free_tier": False,
        "is_provisioning_key": view.key.is_management,
        "rate_limit": rate_limit_json(view.limits.requests_per_minute, view.limits.tokens_per_minute),
    }


def credits_json(key: KeyRecord) -> dict[str, Any]:
    """``GET /credits``: the key's limit as its credits (0 without a limit) and its usage."""
    return {"total_credits": to_usd(key.limit_pico or 0), "total_usage": to_usd(key.usage_pico)}


def _body(raw: bytes) -> dict[str, Any]:
    body = load_object(raw, empty_is_object=True)
    return body


def _limit(value: Any) -> int | None:
    if value is None:
        return None
    problem = BadRequest(
        f"'limit' must be a number of USD from 0 to {MAX_LIMIT_USD}, or null", metadata={"param": "limit"}
    )
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise problem
    try:
        return limit_to_pico(Decimal(str(value)))
    except (InvalidOperation, PriceError):
        raise problem from None


def _per_minute(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PER_MINUTE:
        raise BadRequest(
            f"'{name}' must be an integer from 0 to {MAX_PER_MINUTE}, or null", metadata={"param": name}
        )
    return value


def _text(name: str, value: Any) -> str:
    try:
        return key_name(value)
    except ValueError as exc:
        raise BadRequest(f"'{name}' {exc}", metadata={"param": name}) from None


def parse_expires_at(value: Any) -> datetime | None:
    """A key's end from the wire: an ISO 8601 time (no zone: UTC), or None for never.

    A time already past is accepted: the key stops working at once.
    """
    if value is None:
        return None
    problem = BadRequest(
        "'expires_at' must be an ISO 8601 time, e.g. 2026-12-31T00:00:00Z, or null",
        metadata={"param": "expires_at"},
    )
    if not isinstance(value, str):
        raise problem
    try:
        return parse_utc(value.strip())
    except OutOfRange as exc:
        raise BadRequest(f"'expires_at' is out of range: {exc}", metadata={"param": "expires_at"}) from None
    except ValueError:
        raise problem from None


_CHANGEABLE = frozenset(
    {
        "name",
        "label",
        "limit",
        "limit_reset",
        "requests_per_minute",
        "tokens_per_minute",
        "store_content",
        "expires_at",
        # OpenRouter's, kept as set: genledger has no bring-your-own-key usage to count.
        "include_byok_in_limit",
    }
)


def _known_fields(body: dict[str, Any], known: frozenset[str]) -> None:
    """Refuse a field this route does not take: nothing sent may be silently dropped."""
    for name in body:
        if name not in known:
            raise BadRequest(
                f"Unknown field {name!r}: this route takes {', '.join(sorted(known))}",
                metadata={"param": name},
            )


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "include_byok_in_limit" in body:
        if not isinstance(body["include_byok_in_limit"], bool | None):
            raise BadRequest(
                "'include_byok_in_limit' must be a boolean", metadata={"param": "include_byok_in_limit"}
            )
        changes["include_byok_in_limit"] = bool(body["include_byok_in_limit"])  # null: the default
    if "name" in body:
        changes["name"] = _text("name", body["name"])
    if "label" in body:
        changes["label"] = _text("label", body["label"])
    if "limit" in body:
        changes["limit_pico"] = _limit(body["limit"])
    if "limit_reset" in body:
        if body["limit_reset"] is not None and body["limit_reset"] not in LIMIT_RESETS:
            raise BadRequest(
                f"'limit_reset' must be one of {', '.join(LIMIT_RESETS)} or null",
                metadata={"param": "limit_reset"},
            )
        changes["limit_reset"] = body["limit_reset"]
    for name in ("requests_per_minute", "tokens_per_minute"):
        if name in body:
            changes[name] = _per_minute(name, body[name])
    if "store_content" in body:
        if body["store_content"] is not None and not isinstance(body["store_content"], bool):
            raise BadRequest(
                "'store_content' must be a boolean, or null for the gateway's default",
                metadata={"param": "store_content"},
            )
        changes["store_content"] = body["store_content"]
    if "expires_at" in body:
        changes["expires_at"] = parse_expires_at(body["expires_at"])
    return changes


def parse_key_create(raw: bytes) -> dict[str, Any]:
    """Arguments of ``KeyStore.create`` from a ``POST /keys`` body."""
    return key_create_arguments(_body(raw))


def key_create_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """Arguments of ``KeyStore.create`` from a parsed body (the API's, or the dashboard's form)."""
    _known_fields(body, _CHANGEABLE | {"management"})
    if "name" not in body:
        raise BadRequest("'name' is required", metadata={"param": "name"})
    changes = _changes(body)
    management = body.get("management", False)
    if not isinstance(management, bool):
        raise BadRequest("'management' must be a boolean", metadata={"param": "management"})
    return {**changes, "management": management}


def parse_key_update(raw: bytes) -> dict[str, Any]:
    """Arguments of ``KeyStore.update`` from a ``PATCH /keys/{hash}`` body."""
    return key_update_changes(_body(raw))


def key_update_changes(body: dict[str, Any]) -> dict[str, Any]:
    """Arguments of ``KeyStore.update`` from a parsed body (the API's, or the dashboard's form)."""
    _known_fields(body, _CHANGEABLE | {"disabled"})
    changes = _changes(body)
    if "disabled" in body:
        if not isinstance(body["disabled"], bool):
            raise BadRequest("'disabled' must be a boolean", metadata={"param": "disabled"})
        changes["disabled"] = body["disabled"]
    if not changes:
        raise BadRequest(
            "Nothing to change: give name, label, limit, limit_reset, disabled, rate limits, "
            "store_content, expires_at or include_byok_in_limit"
        )
    return changes


MAX_KEYS_OFFSET = 10**9
_LIST_PARAMETERS = ("include_disabled", "offset")


def parse_key_list_query(params: Mapping[str, str]) -> tuple[bool, int]:
    """``GET /keys``'s query, as OpenRouter's: (``include_disabled``, default false; ``offset``)."""
    for name in params:
        if name not in _LIST_PARAMETERS:
            raise BadRequest(
                f"Unknown query parameter {name!r}: this route takes {', '.join(_LIST_PARAMETERS)}",
                metadata={"param": name},
            )
    include_disabled = params.get("include_disabled", "false")
    if include_disabled not in ("true", "false"):
        raise BadRequest("'include_disabled' must be true or false", metadata={"param": "include_disabled"})
    return include_disabled == "true", query_int(params, "offset", 0, MAX_KEYS_OFFSET) or 0
