"""The command's Typer apps and what every command shares: consoles, settings, the ledger."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich import table
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from genledger.config import ConfigError, Settings, load_settings, unknown_variables
from genledger.core.money import MAX_LIMIT_USD, PriceError, limit_to_pico, to_decimal
from genledger.ledger import Ledger, MigrationError

if TYPE_CHECKING:
    pass


app = typer.Typer(
    help="genledger: an LLM gateway that records what every call did and cost.", no_args_is_help=True
)
keys_app = typer.Typer(help="Create, list and disable API keys.", no_args_is_help=True)
generations_app = typer.Typer(help="Read generations from the ledger.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(generations_app, name="generations")


def _out() -> Console:
    # Built per call, so the terminal's width (COLUMNS) is read when printing. No markup:
    # what is printed holds text callers chose (a key's name, a request's user), and Rich
    # would read "[/x]" in it as a tag (and fail) or drop "[red]"; styles are given as styles.
    return Console(markup=False)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``): what a caller chose
    (a request's user, a key's name) must not send the operator's terminal an escape sequence
    (its title, its clipboard, a cleared screen), and Rich passes ESC and CSI on as they are."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class Table(table.Table):
    """Rich's table, its text cells shown :func:`plain`."""

    def add_row(self, *cells: Any, **options: Any) -> None:
        super().add_row(*(plain(cell) if isinstance(cell, str) else cell for cell in cells), **options)


def _err() -> Console:
    return Console(stderr=True, markup=False)


def error(message: str, **options: Any) -> None:
    """``error: <message>`` on stderr, the prefix in red."""
    _err().print(Text.assemble(("error:", "red"), " ", message), **options)


def warning(message: str, **options: Any) -> None:
    """``warning: <message>`` on stderr, the prefix in yellow."""
    _err().print(Text.assemble(("warning:", "yellow"), " ", message), **options)


def with_default(help: str, default: str) -> str:
    """``help`` ending as Typer ends the help of an option whose default it shows:
    ``[default: 8080]``, escaped: Typer reads help as Rich markup, where that is a tag (it
    printed "Port to listen on ." without it)."""
    return f"{help} {escape(f'[default: {default}]')}"


T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (or $GENLEDGER_CONFIG).", show_default=False),
]
DEMO_KEY_NAME = "demo"


def _settings(config: Path | None, **overrides: Any) -> Settings:
    # A misspelt variable would leave its setting at the default: said, but not refused, as
    # the environment holds other programs' GENLEDGER_* too (the tests', the benchmarks').
    for unknown in unknown_variables():
        hint = f" (did you mean {unknown.closest}?)" if unknown.closest else ""
        warning(f"{unknown.name} is not a genledger setting: ignored{hint}", soft_wrap=True)
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        error(str(exc), soft_wrap=True)
        raise typer.Exit(2) from None


def _with_provider_keys(settings: Settings) -> Settings:
    """``settings``, after checking that every provider's key variable was set; exit 2 if not.
    Only commands that call providers need their keys."""
    try:
        settings.check_provider_keys()
    except ConfigError as exc:
        error(str(exc), soft_wrap=True)
        raise typer.Exit(2) from None
    return settings


def _with_ledger(settings: Settings, work: Callable[[Ledger], Awaitable[T]]) -> T:
    """``work`` on the open ledger; exit 1 if it cannot be opened. ``work``'s errors propagate."""

    async def run() -> T:
        # Only the opening is guarded: work raises ValueErrors of its own (KeyExists) that its
        # command reports, and they must not read as a ledger that failed to open.
        try:
            ledger = await Ledger.open(
                settings.database_url, rollup_grace=timedelta(seconds=settings.late_grace)
            )
        except (OSError, ValueError, MigrationError, SQLAlchemyError) as exc:
            where, why = settings.database_url, str(exc).splitlines()[0]
            error(f"cannot open the ledger at {where}: {why}", soft_wrap=True)
            raise typer.Exit(1) from None
        try:
            return await work(ledger)
        finally:
            await ledger.close()

    return asyncio.run(run())


def _dollars(pico: int) -> str:
    return f"{to_decimal(pico).normalize():f}"


def _usd(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return limit_to_pico(Decimal(value))
    except (InvalidOperation, PriceError):
        error(f"--limit must be a USD amount from 0 to {MAX_LIMIT_USD}, got {value!r}")
        raise typer.Exit(2) from None
