"""The read side's filter options, parsed by the API's own query grammar (api/list_wire.py)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer

from genledger.core.stores import GenerationFilter
from genledger.errors import BadRequest
from genledger.ledger import Ledger

if TYPE_CHECKING:
    pass

from genledger.cli._app import (
    error,
)

# The list's query-string grammar (api/list_wire.py) parses these options too: its parameter
# names, and the options they come from.
_OPTION_OF = {
    "created_after": "--since",
    "created_before": "--until",
    "model": "--model",
    "provider_name": "--provider",
    "finish_reason": "--finish-reason",
    "streamed": "--streamed",
    "external_user": "--user",
    "session_id": "--session",
    "min_cost": "--min-cost",
}
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="From this ISO 8601 time on (UTC unless it names a zone).", show_default=False
    ),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Before this ISO 8601 time (exclusive).", show_default=False)
]
ModelOption = Annotated[str | None, typer.Option("--model", help="Only this model.", show_default=False)]
ProviderOption = Annotated[
    str | None, typer.Option("--provider", help="Only this provider (its display name).", show_default=False)
]
FinishReasonOption = Annotated[
    str | None, typer.Option("--finish-reason", help="Only this finish reason.", show_default=False)
]
StreamedOption = Annotated[
    bool | None,
    typer.Option(
        "--streamed/--not-streamed", help="Only streamed, or only not streamed.", show_default=False
    ),
]
UserOption = Annotated[
    str | None, typer.Option("--user", help="Only this end user (the request's user).", show_default=False)
]
SessionOption = Annotated[
    str | None, typer.Option("--session", help="Only this session id.", show_default=False)
]
MetadataOption = Annotated[
    list[str] | None,
    typer.Option(
        "--metadata",
        metavar="KEY=VALUE",
        help="Only with this metadata pair (repeatable).",
        show_default=False,
    ),
]
KeyOption = Annotated[
    str | None, typer.Option("--key", help="Only this key's (by name).", show_default=False)
]
MinCostOption = Annotated[
    str | None,
    typer.Option("--min-cost", help="Only those costing at least this many USD.", show_default=False),
]


def _generation_filter(
    *,
    since: str | None,
    until: str | None,
    model: str | None,
    provider: str | None,
    finish_reason: str | None,
    streamed: bool | None,
    user: str | None,
    session: str | None,
    metadata: list[str] | None,
    min_cost: str | None,
) -> GenerationFilter:
    """The options as a filter, parsed by the API's grammar; a bad one exits 2 naming it."""
    from genledger.api.list_wire import parse_list_query

    given = {
        "created_after": since,
        "created_before": until,
        "model": model,
        "provider_name": provider,
        "finish_reason": finish_reason,
        "streamed": None if streamed is None else str(streamed).lower(),
        "external_user": user,
        "session_id": session,
        "min_cost": min_cost,
    }
    params = {name: value for name, value in given.items() if value is not None}
    for pair in metadata or ():
        key, equals, value = pair.partition("=")
        if not equals:
            error(f"--metadata must be KEY=VALUE, got {pair!r}")
            raise typer.Exit(2)
        if f"metadata[{key}]" in params:  # a key takes one value: keeping the last would drop one
            error(f"--metadata names {key!r} twice: a key takes one value")
            raise typer.Exit(2)
        params[f"metadata[{key}]"] = value
    try:
        return parse_list_query(params, list(params)).where
    except BadRequest as exc:
        param = (exc.metadata or {}).get("param", "")
        option = "--metadata" if param.startswith("metadata[") else _OPTION_OF[param]
        error(exc.message.replace(repr(param), option, 1))
        raise typer.Exit(2) from None


async def _for_key(ledger: Ledger, where: GenerationFilter, key_name: str | None) -> GenerationFilter | None:
    """``where`` narrowed to the key named ``key_name``; None if there is no such key."""
    if key_name is None:
        return where
    key = await ledger.keys.find_by_name(key_name)
    return None if key is None else dataclasses.replace(where, key_id=key.id)


def _no_key(name: str | None) -> typer.Exit:
    error(f"no key named {name!r}")
    return typer.Exit(1)
