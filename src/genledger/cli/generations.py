"""``genledger generations ...``: one record, the newest, or all of a filter to a file."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from genledger.core.generation import Generation
from genledger.core.stores import walk
from genledger.gateway.reads import notes_of
from genledger.ledger import Ledger

if TYPE_CHECKING:
    from genledger.api.parquet_wire import ParquetExport

from genledger.cli._app import (
    ConfigOption,
    Table,
    _dollars,
    _err,
    _out,
    _settings,
    _with_ledger,
    error,
    generations_app,
)
from genledger.cli._filters import (
    FinishReasonOption,
    KeyOption,
    MetadataOption,
    MinCostOption,
    ModelOption,
    ProviderOption,
    SessionOption,
    SinceOption,
    StreamedOption,
    UntilOption,
    UserOption,
    _for_key,
    _generation_filter,
    _no_key,
)


@generations_app.command("get")
def generations_get(
    generation_id: Annotated[str, typer.Argument(metavar="ID", help="The generation id.")],
    config: ConfigOption = None,
) -> None:
    """Show one generation as a table: money in USD, as the other commands print it; other
    values as their JSON (true, null, objects), text as it is."""
    from genledger.api.generation_wire import USD_KEYS, generation_json

    settings = _settings(config)
    generation = _with_ledger(settings, lambda ledger: ledger.generations.lookup(generation_id))
    if generation is None:
        error(f"no generation {generation_id!r}")
        raise typer.Exit(1)
    table = Table("field", "value", title=generation_id)
    for field, value in generation_json(generation).items():
        attribute = USD_KEYS.get(field)
        if attribute is not None and value is not None:  # exact, from the picodollars: not the float
            table.add_row(field, _dollars(getattr(generation, attribute)))
        else:
            table.add_row(field, value if isinstance(value, str) else orjson.dumps(value).decode())
    _out().print(table)


class ExportFormat(StrEnum):
    ndjson = "ndjson"
    csv = "csv"
    parquet = "parquet"


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
        error(PARQUET_MISSING, soft_wrap=True)
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
    pyarrow (pip install 'genledger\\[export]'). Exits 1 for an unknown --key, 2 on a bad option.
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
        error(f"--output: no folder {output.parent}", soft_wrap=True)
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
        notes = functools.partial(notes_of, ledger.generations, ledger.feedback)
        with progress:
            if parquet is not None:
                with parquet(output) as out:
                    async for batch in batches:
                        out.write(batch, await notes([g.id for g in batch]))
            else:
                with output.open("wb") as out_file:
                    async for chunk in render(batches, format.value, notes):
                        out_file.write(chunk)
            progress.update(task, completed=span)
        return written

    count = _with_ledger(settings, export)
    if count is None:
        raise _no_key(key)
    _out().print(f"exported {count} generations to {output!s}", soft_wrap=True)
