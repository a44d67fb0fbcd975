"""The ``genledger`` command: serve the gateway, manage keys, read the ledger."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from genledger.config import ConfigError, Settings, load_settings
from genledger.core.activity import ActivityRows, By, Grouping, parse_groupings
from genledger.core.generation import Generation
from genledger.core.money import MAX_LIMIT_USD, PriceError, limit_to_pico, to_decimal
from genledger.core.stores import GenerationFilter, walk
from genledger.errors import BadRequest
from genledger.ledger import KeyExists, Ledger, MigrationError

if TYPE_CHECKING:
    from genledger.api.parquet_wire import ParquetExport

app = typer.Typer(
    help="genledger: an LLM gateway that records what every call did and cost.", no_args_is_help=True
)
keys_app = typer.Typer(help="Create, list and disable API keys.", no_args_is_help=True)
generations_app = typer.Typer(help="Read generations from the ledger.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(generations_app, name="generations")


def _out() -> Console:
    # Built per call, so the terminal's width (COLUMNS) is read when printing.
    return Console()


def _err() -> Console:
    return Console(stderr=True)


T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (or $GENLEDGER_CONFIG).", show_default=False),
]
DEMO_KEY_NAME = "demo"


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        _err().print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _with_ledger(settings: Settings, work: Callable[[Ledger], Awaitable[T]]) -> T:
    """``work`` on the open ledger; exit 1 if it cannot be opened. ``work``'s errors propagate."""

    async def run() -> T:
        # Only the opening is guarded: work raises ValueErrors of its own (KeyExists) that its
        # command reports, and they must not read as a ledger that failed to open.
        try:
            ledger = await Ledger.open(settings.database_url)
        except (OSError, ValueError, MigrationError, SQLAlchemyError) as exc:
            where, why = escape(settings.database_url), escape(str(exc).splitlines()[0])
            _err().print(f"[red]error:[/red] cannot open the ledger at {where}: {why}", soft_wrap=True)
            raise typer.Exit(1) from None
        try:
            return await work(ledger)
        finally:
            await ledger.close()

    return asyncio.run(run())


class LimitResetChoice(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


def _dollars(pico: int) -> str:
    return f"{to_decimal(pico).normalize():f}"


def _usd(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return limit_to_pico(Decimal(value))
    except (InvalidOperation, PriceError):
        _err().print(
            f"[red]error:[/red] --limit must be a USD amount from 0 to {MAX_LIMIT_USD}, got {value!r}"
        )
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8080].")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Print a fresh demo key at start.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the gateway."""
    import uvicorn

    from genledger.api import create_app

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = _settings(config, **overrides)
    # The ledger is opened (and migrated) before serving, so a database that cannot be used
    # is one line on stderr, not the traceback of a failed lifespan.
    secret = _with_ledger(settings, _demo_key if demo else _opened)
    if secret is not None:
        _out().print(f"[bold]demo key[/bold] (shown once): {secret}", soft_wrap=True)
        _out().print(f"models: {', '.join(settings.models)}")
        base = f"http://{settings.host}:{settings.port}/api/v1"
        model = next(iter(settings.models))
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        _out().print(
            f"try: curl {base}/chat/completions -H 'Authorization: Bearer {secret}' "
            f"-H 'Content-Type: application/json' -d '{body}'",
            soft_wrap=True,
        )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=10,
    )


async def _opened(ledger: Ledger) -> str | None:
    return None


async def _demo_key(ledger: Ledger) -> str:
    rotated = await ledger.keys.rotate(DEMO_KEY_NAME)
    if rotated is not None:
        return rotated[1]
    _, secret = await ledger.keys.create(DEMO_KEY_NAME)
    return secret


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
    config: ConfigOption = None,
) -> None:
    """Create a key and print its secret (shown once; only a hash is stored).

    Exits 1 if a key with that name exists already, 2 on a bad option.
    """
    settings = _settings(config)
    limit_pico = _usd(limit)

    async def create(ledger: Ledger) -> str:
        _, secret = await ledger.keys.create(
            name,
            limit_pico=limit_pico,
            limit_reset=limit_reset.value if limit_reset else None,
            management=management,
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
        )
        return secret

    try:
        secret = _with_ledger(settings, create)
    except KeyExists as exc:
        _err().print(f"[red]error:[/red] {exc}")
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
        )
    _out().print(table)


@keys_app.command("usage")
def keys_usage(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    days: Annotated[int, typer.Option(min=1, help="How many days back.")] = 30,
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
        _err().print(f"[red]error:[/red] no key named {name!r}")
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
        _err().print(f"[red]error:[/red] no key named {name!r}")
        raise typer.Exit(1)
    _out().print(f"disabled {name}")


@generations_app.command("get")
def generations_get(
    generation_id: Annotated[str, typer.Argument(metavar="ID", help="The generation id.")],
    config: ConfigOption = None,
) -> None:
    """Show one generation as a table."""
    from genledger.api.generation_wire import generation_json

    settings = _settings(config)
    generation = _with_ledger(settings, lambda ledger: ledger.generations.lookup(generation_id))
    if generation is None:
        _err().print(f"[red]error:[/red] no generation {generation_id!r}")
        raise typer.Exit(1)
    table = Table("field", "value", title=generation_id)
    for field, value in generation_json(generation).items():
        table.add_row(field, "null" if value is None else str(value))
    _out().print(table)


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


class ExportFormat(StrEnum):
    ndjson = "ndjson"
    csv = "csv"
    parquet = "parquet"


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
            _err().print(f"[red]error:[/red] --metadata must be KEY=VALUE, got {escape(repr(pair))}")
            raise typer.Exit(2)
        params[f"metadata[{key}]"] = value
    try:
        return parse_list_query(params, list(params)).where
    except BadRequest as exc:
        param = (exc.metadata or {}).get("param", "")
        option = "--metadata" if param.startswith("metadata[") else _OPTION_OF[param]
        _err().print(f"[red]error:[/red] {escape(exc.message.replace(repr(param), option, 1))}")
        raise typer.Exit(2) from None


async def _for_key(ledger: Ledger, where: GenerationFilter, key_name: str | None) -> GenerationFilter | None:
    """``where`` narrowed to the key named ``key_name``; None if there is no such key."""
    if key_name is None:
        return where
    key = await ledger.keys.find_by_name(key_name)
    return None if key is None else dataclasses.replace(where, key_id=key.id)


def _no_key(name: str | None) -> typer.Exit:
    _err().print(f"[red]error:[/red] no key named {name!r}")
    return typer.Exit(1)


@generations_app.command("list")
def generations_list(
    since: SinceOption = None,
    until: UntilOption = None,
    model: ModelOption = None,
    provider: ProviderOption = None,
    finish_reason: FinishReasonOption = None,
    streamed: StreamedOption = None,
    user: UserOption = None,
    session: SessionOption = None,
    metadata: MetadataOption = None,
    key: KeyOption = None,
    min_cost: MinCostOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many, newest first.")] = 20,
    config: ConfigOption = None,
) -> None:
    """Show the newest generations (every key's, or one key's) as a table."""
    settings = _settings(config)
    where = _generation_filter(
        since=since,
        until=until,
        model=model,
        provider=provider,
        finish_reason=finish_reason,
        streamed=streamed,
        user=user,
        session=session,
        metadata=metadata,
        min_cost=min_cost,
    )

    async def newest(ledger: Ledger) -> tuple[list[Generation], dict[str, str]] | None:
        scoped = await _for_key(ledger, where, key)
        if scoped is None:
            return None
        page = await ledger.generations.list(scoped, limit=limit)
        return page.items, {record.id: record.name for record in await ledger.keys.list()}

    found = _with_ledger(settings, newest)
    if found is None:
        raise _no_key(key)
    generations, names = found
    table = Table(
        "created (UTC)",
        "id",
        "key",
        "model",
        "provider",
        "tokens in",
        "tokens out",
        "cost (USD)",
        "finish",
        "streamed",
        "user",
        title=f"newest {len(generations)} generations",
    )
    for g in generations:
        table.add_row(
            g.created_at.isoformat(timespec="seconds"),
            g.id,
            names.get(g.key_id, g.key_id),
            g.model,
            g.provider_name or "-",
            "-" if g.tokens_prompt is None else str(g.tokens_prompt),
            "-" if g.tokens_completion is None else str(g.tokens_completion),
            _dollars(g.total_cost_pico),
            g.finish_reason or "-",
            "-" if g.streamed is None else ("yes" if g.streamed else "no"),
            g.external_user or "-",
        )
    _out().print(table)


EXPORT_BATCH = 1000
PARQUET_MISSING = "--format parquet needs pyarrow: pip install 'genledger[export]'"


def _parquet_export() -> type[ParquetExport]:
    """The Parquet writer, or exit 2 naming the extra that installs it."""
    try:
        from genledger.api.parquet_wire import ParquetExport
    except ImportError:
        _err().print(f"[red]error:[/red] {escape(PARQUET_MISSING)}", soft_wrap=True)
        raise typer.Exit(2) from None
    return ParquetExport


@generations_app.command("export")
def generations_export(
    output: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="The file to write.", show_default=False)
    ],
    format: Annotated[
        ExportFormat, typer.Option("--format", help="The file's format.")
    ] = ExportFormat.ndjson,
    since: SinceOption = None,
    until: UntilOption = None,
    model: ModelOption = None,
    provider: ProviderOption = None,
    finish_reason: FinishReasonOption = None,
    streamed: StreamedOption = None,
    user: UserOption = None,
    session: SessionOption = None,
    metadata: MetadataOption = None,
    key: KeyOption = None,
    min_cost: MinCostOption = None,
    config: ConfigOption = None,
) -> None:
    """Write the matching generations to a file, newest first, a batch at a time.

    NDJSON and CSV rows are exactly what GET /api/v1/generations/export gives; Parquet needs
    pyarrow (pip install 'genledger[export]'). Exits 1 for an unknown --key, 2 on a bad option.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from genledger.api.export_wire import render

    settings = _settings(config)
    where = _generation_filter(
        since=since,
        until=until,
        model=model,
        provider=provider,
        finish_reason=finish_reason,
        streamed=streamed,
        user=user,
        session=session,
        metadata=metadata,
        min_cost=min_cost,
    )
    if not output.parent.is_dir():
        _err().print(f"[red]error:[/red] --output: no folder {escape(str(output.parent))}", soft_wrap=True)
        raise typer.Exit(2)
    parquet = _parquet_export() if format is ExportFormat.parquet else None
    # Newest first from --until (or now) down to --since: the bar is the part of that span done.
    top = where.created_before or datetime.now(UTC)
    span = None if where.created_after is None else max((top - where.created_after).total_seconds(), 0.0)
    progress = Progress(
        TextColumn("exporting"),
        BarColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=_err(),
    )
    task = progress.add_task("export", total=span, rows=0)
    written = 0

    async def tracked(batches: AsyncIterator[list[Generation]]) -> AsyncIterator[list[Generation]]:
        nonlocal written
        async for batch in batches:
            yield batch  # written by the time the next one is asked for
            written += len(batch)
            done = (top - batch[-1].created_at).total_seconds()
            progress.update(task, rows=written, completed=None if span is None else min(done, span))

    async def export(ledger: Ledger) -> int | None:
        scoped = await _for_key(ledger, where, key)
        if scoped is None:
            return None
        batches = tracked(walk(ledger.generations, scoped, batch=EXPORT_BATCH))
        with progress:
            if parquet is not None:
                with parquet(output) as out:
                    async for batch in batches:
                        out.write(batch)
            else:
                with output.open("wb") as out_file:
                    async for chunk in render(batches, format.value):
                        out_file.write(chunk)
            progress.update(task, completed=span)
        return written

    count = _with_ledger(settings, export)
    if count is None:
        raise _no_key(key)
    _out().print(f"exported {count} generations to {escape(str(output))}", soft_wrap=True)


def _bad_option(message: str) -> typer.Exit:
    _err().print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(2)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@app.command()
def report(
    by: Annotated[
        str,
        typer.Option("--by", help="Group by: day, hour, model, provider, key, user, session, metadata.KEY."),
    ] = "model",
    since: SinceOption = None,
    until: UntilOption = None,
    model: ModelOption = None,
    provider: ProviderOption = None,
    user: UserOption = None,
    session: SessionOption = None,
    metadata: MetadataOption = None,
    key: KeyOption = None,
    config: ConfigOption = None,
) -> None:
    """Spending per group: requests, usage, tokens, p50/p95 latency and error share.

    Exits 1 for an unknown --key, 2 for a bad option.
    """
    try:
        groupings = parse_groupings(by)
    except ValueError as exc:
        raise _bad_option(f"--by: {exc}") from None
    where = _generation_filter(
        since=since,
        until=until,
        model=model,
        provider=provider,
        finish_reason=None,
        streamed=None,
        user=user,
        session=session,
        metadata=metadata,
        min_cost=None,
    )
    settings = _settings(config)

    async def summed(ledger: Ledger) -> tuple[ActivityRows, dict[str, str]] | None:
        scoped = await _for_key(ledger, where, key)
        if scoped is None:
            return None
        names = {k.id: k.name for k in await ledger.keys.list()}
        return await ledger.generations.activity(scoped, groupings, latency=True), names

    result = _with_ledger(settings, summed)
    if result is None:
        raise _no_key(key)
    rows, names = result
    _out().print(_report_table(groupings, rows, names))


def _report_table(groupings: tuple[Grouping, ...], rows: ActivityRows, names: dict[str, str]) -> Table:
    headers = ["requests", "usage (USD)", "prompt tokens", "completion tokens", "p50 ms", "p95 ms", "errors"]
    table = Table(*(str(g) for g in groupings), *headers, title=f"by {', '.join(map(str, groupings))}")
    for column in table.columns[len(groupings) :]:
        column.justify = "right"

    def shown(grouping: Grouping, value: str | None) -> str:
        if value is None:
            return "-"
        return names.get(value, value) if grouping.by is By.KEY else value

    def share(errors: int, requests: int) -> str:
        return f"{errors / requests:.1%}" if requests else "-"

    for row in rows:
        table.add_row(
            *(escape(shown(g, v)) for g, v in zip(groupings, row.group, strict=True)),
            str(row.requests),
            _dollars(row.usage_pico),
            str(row.prompt_tokens),
            str(row.completion_tokens),
            _ms(row.latency_p50_ms),
            _ms(row.latency_p95_ms),
            share(row.errors, row.requests),
        )
    requests = sum(r.requests for r in rows)
    table.add_row(
        "total",
        *([""] * (len(groupings) - 1)),
        str(requests),
        _dollars(sum(r.usage_pico for r in rows)),
        str(sum(r.prompt_tokens for r in rows)),
        str(sum(r.completion_tokens for r in rows)),
        "",
        "",
        share(sum(r.errors for r in rows), requests),
        style="bold",
    )
    return table


def main() -> None:
    app()
