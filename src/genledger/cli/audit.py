"""Auditing the ledger: ``prices history``, ``reprice``, ``statements close|verify``, ``reconcile``."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer
from rich.text import Text

from genledger.cli._app import ConfigOption, Table, _dollars, _out, _settings, _with_ledger, app, error
from genledger.cli._filters import SinceOption, UntilOption, _generation_filter
from genledger.config import ConfigError
from genledger.core.money import from_usd, usd_to_pico
from genledger.core.prices import current_version, price_to_json
from genledger.core.reconcile import ProviderRecord
from genledger.core.statements import Discrepancy, Statement
from genledger.gateway.reconcile import Reconciliation, reconcile
from genledger.gateway.reprice import RepriceResult, reprice
from genledger.gateway.statements import NotClosable, StatementBook
from genledger.ledger import Ledger

prices_app = typer.Typer(help="The versions of each model's prices.", no_args_is_help=True)
statements_app = typer.Typer(
    help="Sealed daily statements: close a day, verify every closed day.", no_args_is_help=True
)
app.add_typer(prices_app, name="prices")
app.add_typer(statements_app, name="statements")


def _fail(message: str, code: int = 2) -> typer.Exit:
    error(message, soft_wrap=True)
    return typer.Exit(code)


@prices_app.command("history")
def prices_history(
    model: Annotated[str, typer.Argument(help="The model's slug.")], config: ConfigOption = None
) -> None:
    """Every version of MODEL's prices (USD per million tokens), oldest first. Exits 1 if none."""
    settings = _settings(config)

    async def work(ledger: Ledger) -> list[tuple[int, str, str, dict[str, str | None]]]:
        return [
            (v.version, v.effective_at.isoformat(), served_by, price_to_json(price))
            for v in await ledger.prices.history(model)
            for served_by, price in [("-", v.price), *sorted(v.endpoints.items())]
        ]

    versions = _with_ledger(settings, work)
    if not versions:
        raise _fail(f"no price versions of {model!r} (versions are made when the gateway starts)", 1)
    table = Table(
        "version",
        "effective at",
        "served by",
        "prompt",
        "completion",
        "cached prompt",
        "cache write",
        "reasoning",
        caption="served by: a fallback endpoint's provider that charges otherwise; -: any other",
    )
    for version, effective_at, served_by, price in versions:
        table.add_row(str(version), effective_at, Text(served_by), *(price[name] or "-" for name in price))
    _out().print(table)


@app.command("reprice")
def reprice_command(
    model: Annotated[str, typer.Option("--model", help="The model whose generations to re-rate.")],
    since: SinceOption = None,
    until: UntilOption = None,
    apply: Annotated[
        bool, typer.Option("--apply/--dry-run", help="Write the adjustments, or only show them.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why: kept with every adjustment.")] = "",
    config: ConfigOption = None,
) -> None:
    """Re-rate MODEL's generations under its current (configured) prices, as adjustment entries.

    With --apply the configured prices first become a new version if they changed; a dry run
    rates under the version they would become and writes nothing. Nothing recorded is
    changed: each generation whose cost differs gets one adjustment entry, once (applying
    twice adds nothing). Exits 2 without --since or --reason.
    """
    settings = _settings(config)
    if since is None:
        raise _fail("--since is required")
    if not reason.strip():
        raise _fail("--reason is required")
    if model not in settings.models:
        raise _fail(f"{model!r} is not a configured model")
    where = _generation_filter(
        since=since,
        until=until,
        model=None,
        provider=None,
        finish_reason=None,
        streamed=None,
        user=None,
        session=None,
        metadata=None,
        min_cost=None,
    )
    assert where.created_after is not None

    async def work(ledger: Ledger) -> RepriceResult:
        price, endpoints = settings.models[model].price, settings.endpoint_prices(model)
        now = datetime.now(UTC)
        if apply:
            version = await ledger.prices.sync(model, price, now, endpoints)
        else:  # a dry run writes nothing, not even the version it would rate under
            version = current_version(await ledger.prices.history(model), model, price, now, endpoints)
        return await reprice(
            ledger.generations,
            version,
            since=where.created_after,  # type: ignore[arg-type]
            until=where.created_before,
            reason=reason,
            apply=apply,
        )

    try:
        result = _with_ledger(settings, work)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    table = Table("generation", "created at", "from version", "to version", "adjustment (USD)")
    for a in result.adjustments:
        table.add_row(
            a.generation_id,
            a.generation_created_at.isoformat(),
            str(a.from_version),
            str(a.to_version),
            _dollars(a.amount_pico),
        )
    _out().print(table)
    verb = "wrote" if apply else "would write (dry run)"
    _out().print(
        f"{result.examined} generations of {model} examined under price version "
        f"{result.version.version}; {verb} {len(result.adjustments)} adjustments totalling "
        f"{_dollars(result.total_pico)} USD",
        soft_wrap=True,
    )


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"--day must be a date like 2026-11-27, got {value!r}") from None


@statements_app.command("close")
def statements_close(
    day: Annotated[str, typer.Option("--day", help="The UTC day to close, e.g. 2026-11-27.")],
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace",
            min=0,
            help="Seconds after the day's end before it may close (default: total timeout + 60).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Seal DAY: totals per key and model, its record count and a hash chained to the day before.

    Exits 1 when the day cannot be closed (its grace period has not passed, or it or a later
    day is closed already).
    """
    if grace is not None and not math.isfinite(grace):  # nan passes the range check
        raise typer.BadParameter(f"{grace} is not a number of seconds", param_hint="--grace")
    settings = _settings(config)
    closing = _day(day)
    default = settings.late_grace
    wait = timedelta(seconds=grace if grace is not None else default)

    async def work(ledger: Ledger) -> Statement:
        return await StatementBook(ledger.generations, ledger.statements).close(closing, grace=wait)

    try:
        statement = _with_ledger(settings, work)
    except NotClosable as exc:
        raise _fail(str(exc), 1) from None
    table = Table("key", "model", "requests", "usage (USD)")
    for total in statement.totals:
        table.add_row(total.key_id, total.model, str(total.requests), _dollars(total.usage_pico))
    _out().print(table)
    _out().print(f"closed {statement.day}: {statement.record_count} records, hash {statement.hash}")


@statements_app.command("verify")
def statements_verify(config: ConfigOption = None) -> None:
    """Recompute every closed day from the records; name any record added, changed or removed
    after its day was closed. Exits 1 when anything differs."""
    settings = _settings(config)

    async def work(ledger: Ledger) -> tuple[list[Statement], list[Discrepancy]]:
        return await StatementBook(ledger.generations, ledger.statements).verify()

    closed, problems = _with_ledger(settings, work)
    for problem in problems:
        _out().print(Text.assemble((str(problem.day), "red"), f": {problem.detail}"), soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    _out().print(f"{len(closed)} closed days verified: every record as sealed, the chain intact")


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"


@app.command("reconcile")
def reconcile_command(
    provider: Annotated[str, typer.Option("--provider", help="The configured provider to reconcile with.")],
    since: SinceOption = None,
    until: UntilOption = None,
    format: Annotated[ReportFormat, typer.Option("--format", help="table or csv.")] = ReportFormat.table,
    config: ConfigOption = None,
) -> None:
    """Fetch every generation PROVIDER served since --since from its own ``/generation`` (an
    OpenRouter-compatible API: OpenRouter, another genledger) and report each difference in
    tokens and cost. Exits 1 when anything drifts, 2 on a bad option, 3 when the provider
    cannot be read (unreachable, or it does not serve ``/generation``)."""
    from genledger.client import AsyncClient, GenledgerError, NotFoundResponseError

    settings = _settings(config)
    if since is None:
        raise _fail("--since is required")
    configured = settings.providers.get(provider)
    if configured is None or configured.kind != "openai" or configured.base_url is None:
        raise _fail(f"{provider!r} is not a configured OpenAI-compatible provider")
    try:
        configured.check_key(provider)  # only this provider is called
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    where = _generation_filter(
        since=since,
        until=until,
        model=None,
        provider=None,
        finish_reason=None,
        streamed=None,
        user=None,
        session=None,
        metadata=None,
        min_cost=None,
    )
    assert where.created_after is not None
    api_key = configured.api_key.get_secret_value() if configured.api_key else "none"

    async def work(ledger: Ledger) -> Reconciliation:
        async with AsyncClient(api_key=api_key, base_url=configured.base_url) as client:

            async def fetch(upstream_id: str) -> ProviderRecord | None:
                try:
                    theirs = await client.generations.get_generation(id=upstream_id)
                except NotFoundResponseError:
                    return None
                return ProviderRecord(
                    theirs.tokens_prompt,
                    theirs.tokens_completion,
                    from_usd(theirs.total_cost),
                )

            return await reconcile(
                ledger.generations,
                configured.display_name or provider,
                fetch,
                since=where.created_after,  # type: ignore[arg-type]
                until=where.created_before,
                tolerance_pico=usd_to_pico(settings.audit.cost_tolerance),
            )

    try:
        result = _with_ledger(settings, work)
    except GenledgerError as exc:
        error(f"cannot read {provider}'s generations at {configured.base_url}: {exc}", soft_wrap=True)
        raise typer.Exit(3) from None
    rows = [
        [d.generation_id, d.upstream_id or "", d.field, _shown(d.field, d.ours), _shown(d.field, d.theirs)]
        for d in result.differences
    ]
    header = ["generation", "upstream id", "field", "ours", "theirs"]
    if format is ReportFormat.csv:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        typer.echo(buffer.getvalue(), nl=False)
    else:
        table = Table(*header)
        for row in rows:
            table.add_row(*(cell for cell in row))
        _out().print(table)
        _out().print(
            f"{result.examined} generations of {provider} examined, {result.unidentified} without an "
            f"upstream id, {len(result.differences)} differences",
            soft_wrap=True,
        )
    if result.differences:
        raise typer.Exit(1)


def _shown(field: str, value: int | None) -> str:
    if value is None:
        return "missing"
    return _dollars(value) if field == "cost" else str(value)
