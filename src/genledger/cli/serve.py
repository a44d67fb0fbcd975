"""``genledger serve``: the gateway."""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from genledger.ledger import Ledger

if TYPE_CHECKING:
    pass

from genledger.cli._app import (
    DEMO_KEY_NAME,
    ConfigOption,
    _err,
    _out,
    _settings,
    _with_ledger,
    app,
)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8080].")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Print a fresh demo key at start.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes on the one port [default: one per core on PostgreSQL with "
            "Redis limits, else 1].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the gateway."""
    from genledger.api.server import serve as run
    from genledger.api.workers import Supervisor, WorkersError, worker_count

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = _settings(config, **overrides)
    try:
        count = worker_count(settings, workers, os.cpu_count() or 1)
    except WorkersError as exc:
        _err().print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
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
    _out().print(
        f"dashboard: http://{settings.host}:{settings.port}/dashboard (sign in with a key)", soft_wrap=True
    )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if count == 1:
        run(settings, log_level=log_level)
        return
    _out().print(f"workers: {count}")
    raise typer.Exit(Supervisor(settings, count, log_level=log_level).run())


async def _opened(ledger: Ledger) -> str | None:
    return None


async def _demo_key(ledger: Ledger) -> str:
    rotated = await ledger.keys.rotate(DEMO_KEY_NAME)
    if rotated is not None:
        return rotated[1]
    _, secret = await ledger.keys.create(DEMO_KEY_NAME)
    return secret
