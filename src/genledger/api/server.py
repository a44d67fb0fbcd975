"""Serving the app with uvicorn, and the graceful shutdown SIGTERM starts.

On SIGTERM (or SIGINT): the listening socket closes (new connections are refused), a request
that starts from then on is answered with ``Connection: close``, a connection closes once idle
for a moment (``api/connections.py``: not at once, under a caller sending a request on it), and
in-flight requests get ``shutdown_timeout`` seconds to finish; then the requests still waiting
on a provider are stopped (``gateway/stopping.py``): open streams end
with an error chunk and are recorded as cancelled, charged like streams their callers left, and
their reservations are settled. Then the lifespan closes the services: background records finish,
the instance gives back any reservation it still holds, the ledger's writer commits what is
queued. The process exits 0. A second SIGINT exits at once.

``genledger serve`` does what needs the command line (checks, the ledger's migration, the demo
key, what it prints), then replaces itself, same pid, with the serving process,
``python -m genledger.api`` (:func:`main`): one that never imports the command line's modules
(Typer, Rich and the other commands: 6 MiB of each process's memory, workers included, as
spawned workers import their parent's main module).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

import uvicorn
from starlette.applications import Starlette

from genledger.api.app import create_app
from genledger.api.connections import PROTOCOL, DrainingState, ServerConfig
from genledger.api.router import App
from genledger.config import ConfigError, Settings, load_settings
from genledger.logs import configure as configure_logging
from genledger.logs import level_of

YOUNG_COLLECTION_THRESHOLD = 5000
"""Allocations (net of frees) that start a collection of the youngest generation (CPython: 700).

A request's objects are freed by their reference counts (it leaves no cycles:
tests/api/test_no_reference_cycles.py), so the collector only walks what is in flight. But
at 700, the objects of 32 requests in flight exceed the threshold all the time: measured, a
young collection every 10 requests, 0.27 ms each, and in all 4.6% of the gateway's CPU for
nothing (not one object collected). At 5000 none ran in 5 s of the same load, and RSS did
not move. Cycles that do come (an exception's traceback) wait at most that many allocations.
"""

BACKLOG = 2048  # connections the kernel keeps waiting to be accepted (uvicorn's default)

# After the grace, stopped requests have this long to write their records and end.
STOP_GRACE_S = 10.0


class GracefulServer(uvicorn.Server):
    """uvicorn's server, with genledger's end of the grace, and exit status 0 after a signal."""

    def __init__(
        self,
        config: uvicorn.Config,
        app: App,
        shutdown_timeout: float,
        on_started: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(config)
        self.server_state: DrainingState = DrainingState()
        self._app = app
        self._shutdown_timeout = shutdown_timeout
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # What start-up built lives as long as the process: out of the collector's sight,
            # its full collections stop walking it (they were the slowest requests' pauses).
            gc.collect()
            gc.freeze()
            gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)  # (the older generations' as they were)
            if self._on_started is not None:
                self._on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # As uvicorn's, without keeping the signal to raise again once shut down: a shutdown
        # that went as planned exits 0, not by the signal.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        services = self._app.services
        timer = None
        if services is not None:
            timer = loop.call_later(self._shutdown_timeout, services.stop_requests)
        try:
            # Before uvicorn's shutdown stops accepting: a connection the loop accepted just
            # before, and meets only after, drains too (connections.py).
            self.server_state.draining = True
            await super().shutdown(sockets)
        finally:
            if timer is not None:
                timer.cancel()


def server_config(app: Starlette, settings: Settings) -> ServerConfig:
    """uvicorn's config for ``app``: the address, the caller-facing timeouts and limits.

    A caller that sends no complete request headers within ``header_timeout``, or no whole
    body within ``body_timeout`` after them, is cut off (``api/connections.py``), one idle
    between requests after ``keep_alive_timeout``;
    beyond ``max_connections`` connections (or requests) at once, requests get 503.

    A caller is the peer's address: ``proxy_headers`` off, or uvicorn would take the address
    ``X-Forwarded-For`` names from any loopback peer (``FORWARDED_ALLOW_IPS``), and a caller
    (or a reverse proxy passing its headers on) could pick its own, loopback's exemption from
    the auth-failure limit included.
    """
    return ServerConfig(
        app,
        host=settings.host,
        port=settings.port,
        http=PROTOCOL,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        timeout_keep_alive=settings.keep_alive_timeout,
        limit_concurrency=settings.max_connections,
        proxy_headers=False,
        log_config=None,
        log_level=level_of(settings.logging.level),
        access_log=False,
        loop="auto",
        # uvicorn's own deadline, after which it cancels what is left: only a backstop here.
        timeout_graceful_shutdown=int(settings.shutdown_timeout + STOP_GRACE_S),
    )


def serve(
    settings: Settings,
    *,
    sockets: list[socket.socket] | None = None,
    on_started: Callable[[], object] | None = None,
    metrics_file: Path | None = None,
) -> None:
    """Run the gateway until SIGTERM or SIGINT, then shut down gracefully.

    Logging is set up from ``settings.logging`` (``logs.configure``): uvicorn's own lines go
    through the same handler, in the same format; the request log replaces its access log.
    It listens on ``sockets`` when given (:func:`listen`'s, or a worker's of ``workers.py``),
    else binds its own; ``on_started`` is called once it serves; a worker writes its metrics to
    ``metrics_file``.
    """
    configure_logging(settings.logging)
    app = create_app(settings, metrics_file=metrics_file)
    config = server_config(app, settings)
    GracefulServer(config, app, settings.shutdown_timeout, on_started).run(sockets)


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on ``host``:``port``, inheritable by workers: one for each address
    ``host`` resolves to, as uvicorn binds its own (``SO_REUSEADDR``; IPv6 only on an IPv6 one).

    Bound before anything else starts, so that a port that is taken, or a host that does not
    resolve, is an :class:`OSError` here and not a lifespan started and torn down in vain.
    """
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            listener = socket.socket(family, kind, proto)
            listeners.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
            listener.listen(BACKLOG)
            listener.set_inheritable(True)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def serving_command(
    config: Path | None, *, host: str | None, port: int | None, log_level: str | None, workers: int
) -> list[str]:
    """The serving process's command line for these options of ``genledger serve``."""
    command = [sys.executable, "-m", "genledger.api", "--workers", str(workers)]
    options = {"--config": config, "--host": host, "--port": port, "--log-level": log_level}
    for option, value in options.items():
        if value is not None:
            command += [option, str(value)]
    return command


def become(command: Sequence[str]) -> NoReturn:
    """Replace this process (same pid, signals and open files) with ``command``."""
    # What was printed but not yet written would be lost with this process's buffers.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], list(command))


def main(argv: Sequence[str] | None = None) -> int:
    """The serving process (``python -m genledger.api``): the settings ``genledger serve``
    checked, read again from the same file and environment; then one server, or a supervisor
    of ``--workers`` workers. Its exit status."""
    parser = argparse.ArgumentParser(prog="python -m genledger.api", description="Serve the gateway.")
    parser.add_argument("--config")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error", "off"))
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    # The options win over the file and the environment (GENLEDGER_PORT=...), as in the CLI.
    overrides = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name) is not None}
    try:
        settings = load_settings(args.config).model_copy(update=overrides)
        settings.check_provider_keys()  # here, not as the lifespan builds them: one line, exit 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.log_level is not None:
        settings = settings.with_log_level(args.log_level)
    try:
        listeners = listen(settings.host, settings.port)
    except OSError as exc:  # a port that is taken, a host that does not resolve
        where = f"{settings.host}:{settings.port}"
        print(f"error: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    if args.workers == 1:
        serve(settings, sockets=listeners)
        return 0
    from genledger.api.workers import Supervisor

    configure_logging(settings.logging)  # the parent's own lines: workers started, replaced
    return Supervisor(settings, args.workers).run(listeners)
