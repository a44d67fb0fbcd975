"""Keys on the wire: OpenRouter's shapes for /key, /credits and the management API."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from genledger.core.credits import LIMIT_RESETS, period_start
from genledger.core.keys import KeyRecord
from genledger.core.money import MAX_LIMIT_USD, PriceError, limit_to_pico, to_usd
from genledger.errors import BadRequest
from genledger.gateway.keys import KeyView

_NAME_MAX = 200


def limit_remaining(key: KeyRecord, now: datetime) -> int | None:
    if key.limit_pico is None:
        return None
    used = key.limited_usage_pico
    current = period_start(key.limit_reset, now)
    if current is not None and (key.period_start is None or key.period_start < current):
        used = 0  # a new period began and no request has been charged in it yet
    return max(key.limit_pico - used, 0)


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
        "include_byok_in_limit": False,
        "usage": to_usd(key.usage_pico),
        "usage_daily": to_usd(usage.daily),
        "usage_weekly": to_usd(usage.weekly),
        "usage_monthly": to_usd(usage.monthly),
        "byok_usage": 0.0,
        "is_management_key": key.is_management,
        # An extension: credit held by requests in flight (limit_remaining does not subtract it).
        "reserved_in_flight": to_usd(key.reserved_pico),
    }


def key_json(view: KeyView) -> dict[str, Any]:
    """A key as the management API shows it: never its secret."""
    key = view.key
    return {
        "hash": key.hash,
        "name": key.name,
        "disabled": key.disabled,
        **_limits_and_usage(view),
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "created_at": key.created_at.isoformat(),
        "updated_at": key.updated_at.isoformat() if key.updated_at else None,
    }


def key_info_json(view: KeyView) -> dict[str, Any]:
    """``GET /key``: the calling key's limits, usage and effective rate limits."""
    return {
        **_limits_and_usage(view),
        "is_free_tier": False,
        "is_provisioning_key": view.key.is_management,
        "rate_limit": rate_limit_json(view.limits.requests_per_minute, view.limits.tokens_per_minute),
    }


def credits_json(key: KeyRecord) -> dict[str, Any]:
    """``GET /credits``: the key's limit as its credits (0 without a limit) and its usage."""
    return {"total_credits": to_usd(key.limit_pico or 0), "total_usage": to_usd(key.usage_pico)}


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
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
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"'{name}' must be a non-negative integer or null", metadata={"param": name})
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _NAME_MAX:
        raise BadRequest(f"'{name}' must be a non-empty string of at most {_NAME_MAX} characters")
    return value.strip()


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
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
    return changes


def parse_key_create(raw: bytes) -> dict[str, Any]:
    """Arguments of ``KeyStore.create`` from a ``POST /keys`` body."""
    body = _body(raw)
    if "name" not in body:
        raise BadRequest("'name' is required", metadata={"param": "name"})
    changes = _changes(body)
    management = body.get("management", False)
    if not isinstance(management, bool):
        raise BadRequest("'management' must be a boolean", metadata={"param": "management"})
    return {**changes, "management": management}


def parse_key_update(raw: bytes) -> dict[str, Any]:
    """Arguments of ``KeyStore.update`` from a ``PATCH /keys/{hash}`` body."""
    body = _body(raw)
    changes = _changes(body)
    if "disabled" in body:
        if not isinstance(body["disabled"], bool):
            raise BadRequest("'disabled' must be a boolean", metadata={"param": "disabled"})
        changes["disabled"] = body["disabled"]
    if not changes:
        raise BadRequest("Nothing to change: give name, label, limit, limit_reset, disabled or rate limits")
    return changes
