"""``genledger serve``: the gateway."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.text import Text

from genledger.cli._app import (
    DEMO_KEY_NAME,
    ConfigOption,
    _out,
    _settings,
    _with_ledger,
    _with_provider_keys,
    app,
    error,
    with_default,
)
from genledger.config import DEFAULT_HOST, DEFAULT_PORT, Settings
from genledger.ledger import Ledger

_LOG_LEVELS = ("debug", "info", "warning", "error", "off")


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help=with_default("Interface to listen on.", DEFAULT_HOST))
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help=with_default("Port to listen on.", str(DEFAULT_PORT))),
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Print a fresh demo key at start.")] = False,
    log_level: Annotated[
        str | None,
        typer.Option(help=with_default("debug, info, warning, error or off.", "logging.level of the config")),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help=with_default(
                "Worker processes on the one port.", "one per core on PostgreSQL with Redis limits, else 1"
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the gateway."""
    from genledger.api.server import become, serving_command
    from genledger.api.workers import WorkersError, worker_count

    # The options win over the config file and over the environment (GENLEDGER_PORT=...).
    settings = _with_provider_keys(_settings(config))
    if host is not None:
        settings = settings.model_copy(update={"host": host})
    if port is not None:
        settings = settings.model_copy(update={"port": port})
    if log_level is not None:
        settings = _with_log_level(settings, log_level)
    try:
        count = worker_count(settings, workers, os.cpu_count() or 1)
    except WorkersError as exc:
        error(str(exc), soft_wrap=True)
        raise typer.Exit(2) from None
    # The ledger is opened (and migrated) before serving, so a database that cannot be used
    # is one line on stderr, not the traceback of a failed lifespan.
    secret = _with_ledger(settings, _demo_key if demo else _opened)
    if secret is not None:
        _out().print(Text.assemble(("demo key", "bold"), f" (shown once): {secret}"), soft_wrap=True)
        _out().print(f"models: {', '.join(settings.models)}")
        base = f"http://{settings.host}:{settings.port}/api/v1"
        model = next(iter(settings.models))
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        _out().print(
            f"try: curl {base}/chat/completions -H 'Authorization: Bearer {secret}' "
            f"-H 'Content-Type: application/json' -d '{body}'",
            soft_wrap=True,
        )
    _out().print(
        f"dashboard: http://{settings.host}:{settings.port}/dashboard (sign in with a key)", soft_wrap=True
    )
    if count > 1:
        _out().print(f"workers: {count}")
    # The serving process, in this one's place: see api/server.py.
    level = log_level.lower() if log_level is not None else None
    become(serving_command(config, host=host, port=port, log_level=level, workers=count))


def _with_log_level(settings: Settings, level: str) -> Settings:
    if level.lower() not in _LOG_LEVELS:
        raise typer.BadParameter(f"expected one of {', '.join(_LOG_LEVELS)}", param_hint="--log-level")
    return settings.with_log_level(level.lower())


async def _opened(ledger: Ledger) -> str | None:
    return None


async def _demo_key(ledger: Ledger) -> str:
    rotated = await ledger.keys.rotate(DEMO_KEY_NAME)
    if rotated is not None:
        return rotated[1]
    _, secret = await ledger.keys.create(DEMO_KEY_NAME)
    return secret
