"""``GET /activity``: its query string parsed, its items rendered, here only.

Without ``group_by`` (or with OpenRouter's own ``group_by=workspace``) the items are
OpenRouter's ``ActivityItem``: one per UTC day, model and provider. ``group_by`` with
genledger's groupings gives items with the grouping keys asked for, plus the sums. Money
leaves the ledger as exact picodollars and becomes a USD float only here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from genledger.core.activity import ENDPOINT_DAYS, ActivityRow, By, Grouping, parse_groupings
from genledger.core.money import to_usd
from genledger.core.records import record
from genledger.core.stores import GenerationFilter
from genledger.errors import BadRequest

WINDOW_DAYS = 30
"""The default window: the last 30 UTC days, today included (OpenRouter's has completed days only)."""
WORKSPACE = "workspace"
DEFAULT_WORKSPACE_ID = "default"
"""genledger has one workspace: ``group_by=workspace`` labels every item with it."""
NO_PROVIDER = "unknown"
_KNOWN = {"date", "api_key_hash", "group_by", "workspace_id"}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_HASH = re.compile(r"[0-9a-f]{64}")
_KEY_NAMES = {
    By.DAY: "date",
    By.HOUR: "hour",
    By.MODEL: "model",
    By.PROVIDER: "provider_name",
    By.KEY: "api_key_hash",
    By.USER: "external_user",
    By.SESSION: "session_id",
}


@record
class ActivityQuery:
    where: GenerationFilter
    group_by: tuple[Grouping, ...]
    api_key_hash: str | None
    endpoint_items: bool
    """OpenRouter's items (day, model, provider), rather than genledger's ``group_by`` items."""
    workspace: bool


def _bad(name: str, message: str) -> BadRequest:
    return BadRequest(f"'{name}' {message}", metadata={"param": name})


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def parse_activity_query(params: Mapping[str, str], names: list[str], today: date) -> ActivityQuery:
    """The query string (``params``: last value per name; ``names``: every name given)."""
    for name in names:
        if name not in _KNOWN:
            raise _bad(name, "is not a parameter of activity (date, api_key_hash, group_by, workspace_id)")
    if params.get("workspace_id", DEFAULT_WORKSPACE_ID) != DEFAULT_WORKSPACE_ID:
        raise _bad("workspace_id", f"must be {DEFAULT_WORKSPACE_ID!r}: genledger has one workspace")
    if "date" in params:
        raw = params["date"]
        try:
            if not _DAY.fullmatch(raw):
                raise ValueError
            start = _midnight(date.fromisoformat(raw))
        except ValueError:
            raise _bad("date", "must be a UTC day as YYYY-MM-DD") from None
        try:
            end = start + timedelta(days=1)
        except OverflowError:  # 9999-12-31 has no next day
            raise _bad("date", "must be 9999-12-30 or earlier: the day after it ends is not a date") from None
        where = GenerationFilter(created_after=start, created_before=end)
    else:
        start = _midnight(today - timedelta(days=WINDOW_DAYS - 1))
        where = GenerationFilter(created_after=start, created_before=_midnight(today + timedelta(days=1)))
    api_key_hash = params.get("api_key_hash")
    if api_key_hash is not None and not _HASH.fullmatch(api_key_hash):
        raise _bad("api_key_hash", "must be a key's hash: 64 lowercase hexadecimal digits")
    group_by: tuple[Grouping, ...] = ()
    workspace = False
    if "group_by" in params:
        raw = params["group_by"]
        workspace = WORKSPACE in (name.strip() for name in raw.split(","))
        try:
            group_by = parse_groupings(raw, ignore={WORKSPACE})
        except ValueError as exc:
            raise _bad("group_by", str(exc)) from None
    if group_by:
        return ActivityQuery(where, group_by, api_key_hash, endpoint_items=False, workspace=workspace)
    return ActivityQuery(where, ENDPOINT_DAYS, api_key_hash, endpoint_items=True, workspace=workspace)


def _sums(row: ActivityRow) -> dict[str, Any]:
    return {
        "usage": to_usd(row.usage_pico),
        "byok_usage_inference": 0.0,
        "requests": row.requests,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cached_tokens": row.cached_tokens,
    }


def _endpoint_item(row: ActivityRow) -> dict[str, Any]:
    day, model, provider = row.group
    provider = provider or NO_PROVIDER
    return {
        "date": day,
        "model": model,
        "model_permaslug": model,
        "endpoint_id": f"{provider}/{model}",
        "provider_name": provider,
        **_sums(row),
    }


def _grouped_item(group_by: tuple[Grouping, ...], row: ActivityRow) -> dict[str, Any]:
    keys = (_KEY_NAMES.get(g.by, str(g)) for g in group_by)
    return {**dict(zip(keys, row.group, strict=True)), **_sums(row)}


def activity_json(query: ActivityQuery, rows: list[ActivityRow]) -> dict[str, Any]:
    items = [
        _endpoint_item(row) if query.endpoint_items else _grouped_item(query.group_by, row) for row in rows
    ]
    if query.workspace:
        for item in items:
            item["workspace_id"] = DEFAULT_WORKSPACE_ID
    return {"data": items}
