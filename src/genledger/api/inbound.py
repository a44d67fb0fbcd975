"""Strict reading of request bodies for the routes that refuse what they do not honour.

The Responses and Messages routes answer every field they are sent: each is honoured, or
refused with a 400 that names it (``param`` in the error's metadata). These helpers keep
that rule short to write.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import orjson

from genledger.errors import BadRequest

# orjson reads JSON 1024 levels deep but writes only 254: a body nested between the two would be
# taken in and then fail to serialise (its upstream payload, its idempotency hash), a 500. Well
# under 254, since a payload nests what it is sent a few levels further.
MAX_NESTING = 128

_TYPE_NAMES = {int: "integer", float: "number", str: "string", list: "array", dict: "object", bool: "boolean"}


def bad(param: str, message: str) -> BadRequest:
    """A 400 naming ``param``."""
    return BadRequest(message, metadata={"param": param})


def query_int(params: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    """The query parameter ``name`` as an integer from ``low`` to ``high`` (None: not given).

    ASCII digits only: ``str.isdigit()`` also takes "²", which ``int()`` refuses; and no more
    of them than ``high`` has, so a huge one is refused before ``int()`` reads it.
    """
    raw = params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(high))) or not low <= int(raw) <= high:
        raise bad(name, f"'{name}' must be an integer from {low} to {high}")
    return int(raw)


def only_query(params: Iterable[str], known: Collection[str]) -> None:
    """Refuse a query parameter not in ``known`` with a 400 naming it: nothing sent is silently
    ignored (``/models?category=x`` would otherwise list every model). ``params`` is every name
    given, a repeated one as often as it comes: see :func:`once`."""
    for name in params:
        if name not in known:
            takes = f"this route takes {', '.join(sorted(known))}" if known else "this route takes none"
            raise bad(name, f"Unknown query parameter {name!r}: {takes}")
    once(params)


def once(names: Iterable[str]) -> None:
    """Refuse a query parameter given more than once with a 400 naming it: a route reads the
    last value, and the others would be silently ignored (``?id=a&id=b`` read ``b``)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise bad(name, f"Query parameter {name!r} is given more than once")
        seen.add(name)


def load_object(raw: bytes, *, empty_is_object: bool = False) -> dict[str, Any]:
    """A request body that must be a JSON object (``empty_is_object``: no body is ``{}``).

    A 400 otherwise; for JSON nested more than :data:`MAX_NESTING` levels; and for a NUL
    character (U+0000) in any key or string of it, naming where: PostgreSQL's text and JSON
    cannot hold one, so nothing with one is taken in.
    """
    if empty_is_object and not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    # Only a body with more brackets than the limit can be nested deeper: one count of the
    # bytes spares the walk of every usual body.
    if raw.count(b"{") + raw.count(b"[") > MAX_NESTING and _deeper_than(body, MAX_NESTING):
        raise BadRequest(f"Request body is nested more than {MAX_NESTING} levels deep")
    # JSON can only spell NUL as an escape: one search of the bytes spares the walk (`find`:
    # see nul_guard.py).
    if raw.find(b"\\u0000") != -1 and (where := _nul_at(body, "")) is not None:
        raise bad(
            where or "body", f"'{where}' contains a NUL character (\\u0000), which genledger cannot store"
        )
    return body


def _deeper_than(body: dict[str, Any], limit: int) -> bool:
    """Whether ``body`` nests objects and arrays more than ``limit`` levels deep."""
    level: list[Any] = [body]
    for _ in range(limit):
        level = [
            item
            for container in level
            for item in (container.values() if isinstance(container, dict) else container)
            if isinstance(item, (dict, list))
        ]
        if not level:
            return False
    return True


def _nul_at(value: Any, where: str) -> str | None:
    """The path of the first key or string in ``value`` holding a NUL character, if any."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else key
            if "\x00" in key:
                return path
            if (found := _nul_at(item, path)) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _nul_at(item, f"{where}[{index}]")) is not None:
                return found
    return None


def only(obj: dict[str, Any], allowed: Collection[str], where: str = "") -> None:
    """Refuse the first key of ``obj`` not in ``allowed``, by its full name."""
    for name in obj:
        if name not in allowed:
            param = f"{where}.{name}" if where else name
            raise bad(param, f"'{param}' is not supported on this route")


def typed(obj: dict[str, Any], name: str, *types: type, where: str = "", required: bool = False) -> Any:
    """``obj[name]`` when it has one of ``types`` (``None`` when absent or null)."""
    value = obj.get(name)
    param = f"{where}.{name}" if where else name
    if value is None:
        if required:
            raise bad(param, f"'{param}' is required")
        return None
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        kinds = " or ".join(_TYPE_NAMES[t] for t in types)
        raise bad(param, f"'{param}' must be {'an' if kinds[0] in 'aeiou' else 'a'} {kinds}")
    return value


def short_text(obj: dict[str, Any], name: str, limit: int, where: str = "") -> str | None:
    """``obj[name]``, a string of at most ``limit`` characters (``None`` when absent or null)."""
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        param = f"{where}.{name}" if where else name
        raise bad(param, f"'{param}' must be a string of at most {limit} characters")
    return value


def object_at(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(where, f"'{where}' must be an object")
    return value
