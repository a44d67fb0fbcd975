"""``genledger report``: spending per group, with latency percentiles and error share."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from genledger.cli._app import (
    ConfigOption,
    Table,
    _dollars,
    _out,
    _settings,
    _with_ledger,
    app,
    error,
)
from genledger.cli._filters import (
    KeyOption,
    MetadataOption,
    ModelOption,
    ProviderOption,
    SessionOption,
    SinceOption,
    UntilOption,
    UserOption,
    _for_key,
    _generation_filter,
    _no_key,
)
from genledger.core.activity import ActivityRows, By, Grouping, parse_groupings
from genledger.ledger import Ledger


def _bad_option(message: str) -> typer.Exit:
    error(message, soft_wrap=True)
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
            *(shown(g, v) for g, v in zip(groupings, row.group, strict=True)),
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


rollup_app = typer.Typer(
    help="The activity rollup: exact sums per closed hour and day.", no_args_is_help=True
)
app.add_typer(rollup_app, name="rollup")


@rollup_app.command("rebuild")
def rollup_rebuild(config: ConfigOption = None) -> None:
    """Roll the whole ledger up again, from its first generation.

    Activity reads closed hours from the rollup, which counts each hour once: generations
    written later with times in such an hour (an import, a restore from a backup) are not in
    it until this runs. Reads of activity while it runs may come out short.
    """
    settings = _settings(config)
    started = time.monotonic()
    marks = _with_ledger(settings, lambda ledger: ledger.generations.rollup.rebuild())
    elapsed = time.monotonic() - started
    if marks.hours is None:
        _out().print(f"nothing to roll up ({elapsed:.1f} s)")
        return
    _out().print(f"rolled up every hour before {marks.hours:%Y-%m-%d %H:%M} UTC in {elapsed:.1f} s")
