"""GET /api/v1/statements: the sealed daily statements (management keys only)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.headers import header
from genledger.api.responses import json_response, services_of
from genledger.core.money import to_usd
from genledger.core.statements import Statement
from genledger.errors import NotFound


def statement_json(statement: Statement, hashes: dict[str, str]) -> dict[str, Any]:
    """A closed day; a total's key is named by its hash (None for a key deleted since)."""
    return {
        "day": statement.day.isoformat(),
        "closed_at": statement.closed_at.isoformat(),
        "record_count": statement.record_count,
        "hash": statement.hash,
        "previous_hash": statement.previous_hash,
        "totals": [
            {
                "api_key_hash": hashes.get(total.key_id),
                "model": total.model,
                "requests": total.requests,
                "usage": to_usd(total.usage_pico),
            }
            for total in statement.totals
        ],
    }


async def list_statements(request: Request) -> Response:
    services = services_of(request)
    caller = await services.auth.authenticate(header(request, b"authorization"))
    services.keys.require_management(caller, "read the statements")
    if services.statements is None:
        raise NotFound("This gateway keeps no statements")
    hashes = {key.id: key.hash for key in await services.keys.records(caller)}
    closed = await services.statements.statements()
    return json_response({"data": [statement_json(s, hashes) for s in closed]})
