"""The read side's query strings: filters, limits and cursors parsed once here.

``GET /generations`` and ``GET /generations/export`` share one grammar; every bad value is a
400 naming its parameter.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

import orjson

from genledger.api.inbound import once, query_int
from genledger.core.instants import OutOfRange, parse_utc
from genledger.core.money import MAX_LIMIT_USD, PriceError, usd_to_pico
from genledger.core.records import record
from genledger.core.stores import Cursor, GenerationFilter
from genledger.errors import BadRequest

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_TEXT_FILTERS = ("model", "provider_name", "finish_reason", "external_user", "session_id")
_BOOL_FILTERS = ("streamed", "cancelled", "drifted")
_FILTERS = frozenset(
    {"created_after", "created_before", "api_key_hash", "min_cost", *_TEXT_FILTERS, *_BOOL_FILTERS}
)
_LIST_PARAMS = _FILTERS | {"limit", "cursor"}
_EXPORT_PARAMS = _FILTERS | {"format"}
EXPORT_FORMATS = ("ndjson", "csv")
_MAX_TEXT = 1000
_HASH = re.compile("[0-9a-f]{64}")


@record
class ListQuery:
    """A parsed list request: what to select (``key_id`` not yet decided), how much, from where."""

    where: GenerationFilter
    limit: int
    after: Cursor | None
    api_key_hash: str | None


@record
class ExportQuery:
    """A parsed export request: what to select (``key_id`` not yet decided), in which format."""

    where: GenerationFilter
    api_key_hash: str | None
    format: str


def _bad(name: str, message: str) -> BadRequest:
    return BadRequest(f"'{name}' {message}", metadata={"param": name})


def _time(name: str, value: str) -> datetime:
    try:
        return parse_utc(value)
    except OutOfRange as exc:
        raise _bad(name, f"is out of range: {exc}") from None
    except ValueError:
        raise _bad(name, "must be an ISO 8601 date or time, e.g. 2026-11-27T00:00:00Z") from None


def _optional_time(name: str, params: Mapping[str, str]) -> datetime | None:
    return _time(name, params[name]) if name in params else None


def _text(name: str, value: str | None) -> str | None:
    if value is not None and not 1 <= len(value) <= _MAX_TEXT:
        raise _bad(name, f"must have 1 to {_MAX_TEXT} characters")
    return value


def _bool(name: str, value: str) -> bool:
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise _bad(name, "must be true or false")


def _cost(value: str) -> int:
    try:
        usd = Decimal(value)
        if not usd.is_finite() or usd < 0 or usd > MAX_LIMIT_USD:
            raise InvalidOperation
        return usd_to_pico(usd)
    except (InvalidOperation, PriceError):
        raise _bad(
            "min_cost", f"must be a number of USD from 0 to {MAX_LIMIT_USD} (12 decimals at most)"
        ) from None


def encode_cursor(cursor: Cursor) -> str:
    raw = orjson.dumps([cursor.created_at.isoformat(), cursor.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> Cursor:
    try:
        created_at, generation_id = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if not (isinstance(created_at, str) and isinstance(generation_id, str)):
            raise TypeError("a cursor is [created_at, generation id], two strings")
        return Cursor(parse_utc(created_at), generation_id)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise _bad("cursor", "is not a cursor this API gave out") from None


def parse_list_query(params: Mapping[str, str], keys: list[str]) -> ListQuery:
    """The filters of a query string (``params``: last value per name; ``keys``: every name given,
    as often as given: one given twice is a 400)."""
    where, api_key_hash = _filters(params, keys, _LIST_PARAMS, "list")
    limit = query_int(params, "limit", 1, MAX_PAGE) or DEFAULT_PAGE
    after = decode_cursor(params["cursor"]) if "cursor" in params else None
    return ListQuery(where, limit, after, api_key_hash)


def parse_export_query(params: Mapping[str, str], keys: list[str]) -> ExportQuery:
    """The list's filters and a ``format`` (default ``ndjson``); no limit or cursor."""
    where, api_key_hash = _filters(params, keys, _EXPORT_PARAMS, "export")
    format = params.get("format", EXPORT_FORMATS[0])
    if format not in EXPORT_FORMATS:
        raise _bad("format", f"must be one of {', '.join(EXPORT_FORMATS)}")
    return ExportQuery(where, api_key_hash, format)


def _filters(
    params: Mapping[str, str], keys: list[str], known: frozenset[str], what: str
) -> tuple[GenerationFilter, str | None]:
    once(keys)
    metadata: list[tuple[str, str]] = []
    for name in keys:
        if name.startswith("metadata[") and name.endswith("]"):
            key = name[len("metadata[") : -1]
            if not key or len(key) > 64:
                raise _bad(name, "must name a metadata key of 1 to 64 characters")
            metadata.append((key, params[name]))
        elif name not in known:
            raise _bad(name, f"is not a parameter of this {what}")
    text = {name: _text(name, params.get(name)) for name in _TEXT_FILTERS}
    flags = {name: _bool(name, params[name]) if name in params else None for name in _BOOL_FILTERS}
    where = GenerationFilter(
        created_after=_optional_time("created_after", params),
        created_before=_optional_time("created_before", params),
        model=text["model"],
        provider_name=text["provider_name"],
        finish_reason=text["finish_reason"],
        streamed=flags["streamed"],
        cancelled=flags["cancelled"],
        drifted=flags["drifted"],
        external_user=text["external_user"],
        session_id=text["session_id"],
        metadata=tuple(dict.fromkeys(metadata)),
        min_cost_pico=_cost(params["min_cost"]) if "min_cost" in params else None,
    )
    api_key_hash = params.get("api_key_hash")
    if api_key_hash is not None and (
        len(api_key_hash) != 64 or not all(c in "0123456789abcdef" for c in api_key_hash)
    ):
        raise _bad("api_key_hash", "must be a key's hash: 64 lowercase hexadecimal digits")
    return where, api_key_hash
