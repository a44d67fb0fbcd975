"""``genledger keys ...``: create, list, read the usage of and disable API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from genledger.core.instants import OutOfRange, parse_utc
from genledger.core.keys import key_name
from genledger.ledger import KeyExists, Ledger

if TYPE_CHECKING:
    pass

from genledger.cli._app import (
    ConfigOption,
    Table,
    _dollars,
    _out,
    _settings,
    _usd,
    _with_ledger,
    error,
    keys_app,
    with_default,
)


def _expiry(value: str | None, option: str = "--expires-at") -> datetime | None:
    """``option`` (``--expires-at``) as the management API reads ``expires_at``; exit 2 if it
    is not a time."""
    if value is None:
        return None
    try:
        return parse_utc(value.strip())
    except OutOfRange as exc:
        error(f"{option} is out of range: {exc}")
    except ValueError:
        error(f"{option} must be an ISO 8601 time, e.g. 2026-12-31T00:00:00Z, got {value!r}")
    raise typer.Exit(2)


MAX_USAGE_DAYS = 100 * 366  # a century: every ledger's days, and a first day a date can hold


class LimitResetChoice(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A unique name for the key.")],
    limit: Annotated[str | None, typer.Option("--limit", help="Spending limit in USD.")] = None,
    limit_reset: Annotated[
        LimitResetChoice | None,
        typer.Option("--limit-reset", help="Reset the limit every day, week or month."),
    ] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", min=0, help="Requests per minute (0: none).")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", min=0, help="Tokens per minute (0: none).")] = None,
    management: Annotated[bool, typer.Option("--management", help="A key for the management API.")] = False,
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", help="When the key stops working (ISO 8601; no zone: UTC)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a key and print its secret (shown once; only a hash is stored).

    Exits 1 if a key with that name exists already, 2 on a bad option.
    """
    try:
        name = key_name(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None
    settings = _settings(config)
    limit_pico = _usd(limit)
    expiry = _expiry(expires_at)

    async def create(ledger: Ledger) -> str:
        _, secret = await ledger.keys.create(
            name,
            limit_pico=limit_pico,
            limit_reset=limit_reset.value if limit_reset else None,
            management=management,
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
            expires_at=expiry,
        )
        return secret

    try:
        secret = _with_ledger(settings, create)
    except KeyExists as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    _out().print(secret, soft_wrap=True, highlight=False)


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List keys with their limits and usage."""
    settings = _settings(config)
    keys = _with_ledger(settings, lambda ledger: ledger.keys.list())
    table = Table(
        "name",
        "label",
        "limit (USD)",
        "reset",
        "usage (USD)",
        "rpm",
        "tpm",
        "disabled",
        "management",
        "created",
        "expires",
    )
    for key in keys:
        table.add_row(
            key.name,
            key.label,
            "-" if key.limit_pico is None else _dollars(key.limit_pico),
            key.limit_reset or "-",
            _dollars(key.usage_pico),
            "-" if key.requests_per_minute is None else str(key.requests_per_minute),
            "-" if key.tokens_per_minute is None else str(key.tokens_per_minute),
            "yes" if key.disabled else "no",
            "yes" if key.is_management else "no",
            key.created_at.isoformat(timespec="seconds"),
            key.expires_at.isoformat(timespec="seconds") if key.expires_at else "-",
        )
    _out().print(table)


@keys_app.command("usage")
def keys_usage(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    # Bounded (MAX_USAGE_DAYS): a first day further back than a date can hold was a traceback.
    days: Annotated[int, typer.Option(min=1, max=MAX_USAGE_DAYS, help="How many days back.")] = 30,
    config: ConfigOption = None,
) -> None:
    """Print a key's usage by UTC day."""
    settings = _settings(config)

    async def usage(ledger: Ledger) -> list[tuple[str, int, int]] | None:
        key = await ledger.keys.find_by_name(name)
        if key is None:
            return None
        since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
            days=days - 1
        )
        return await ledger.generations.usage_by_day(key.id, since)

    rows = _with_ledger(settings, usage)
    if rows is None:
        error(f"no key named {name!r}")
        raise typer.Exit(1)
    table = Table("day (UTC)", "generations", "usage (USD)", title=f"{name}: last {days} days")
    for day, count, pico in rows:
        table.add_row(day, str(count), _dollars(pico))
    table.add_row("total", str(sum(r[1] for r in rows)), _dollars(sum(r[2] for r in rows)), style="bold")
    _out().print(table)


@keys_app.command("disable")
def keys_disable(
    name: Annotated[str, typer.Argument(help="The key's name.")], config: ConfigOption = None
) -> None:
    """Disable a key: its requests get 401 from then on."""
    settings = _settings(config)
    if not _with_ledger(settings, lambda ledger: ledger.keys.set_disabled(name)):
        error(f"no key named {name!r}")
        raise typer.Exit(1)
    _out().print(f"disabled {name}")


@keys_app.command("expire")
def keys_expire(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help=with_default("When the key stops working (ISO 8601; no zone: UTC).", "now")
        ),
    ] = None,
    never: Annotated[bool, typer.Option("--never", help="Remove the key's expiry.")] = False,
    config: ConfigOption = None,
) -> None:
    """Set when a key stops working (its requests get 401 saying it expired), or --never.

    Exits 1 if there is no such key, 2 on a bad option.
    """
    if never and at is not None:
        error("give --at or --never, not both")
        raise typer.Exit(2)
    settings = _settings(config)
    expiry = None if never else (_expiry(at, "--at") if at is not None else datetime.now(UTC))

    async def expire(ledger: Ledger) -> bool:
        key = await ledger.keys.find_by_name(name)
        return key is not None and await ledger.keys.update(key.hash, expires_at=expiry) is not None

    if not _with_ledger(settings, expire):
        error(f"no key named {name!r}")
        raise typer.Exit(1)
    _out().print(f"{name} expires {'never' if expiry is None else expiry.isoformat(timespec='seconds')}")
