"""Serving the app with uvicorn, and the graceful shutdown SIGTERM starts.

On SIGTERM (or SIGINT): the listening socket closes (new connections are refused), idle
connections close, in-flight requests get ``shutdown_timeout`` seconds to finish; then the
requests still waiting on a provider are stopped (``gateway/stopping.py``): open streams end
with an error chunk and are recorded as cancelled with the usage known so far, and their
reservations are settled. Then the lifespan closes the services: background records finish,
the instance gives back any reservation it still holds, the ledger's writer commits what is
queued. The process exits 0. A second SIGINT exits at once.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from genledger.api.app import create_app
from genledger.config import Settings

# After the grace, stopped requests have this long to write their records and end.
STOP_GRACE_S = 10.0


class GracefulServer(uvicorn.Server):
    """uvicorn's server, with genledger's end of the grace, and exit status 0 after a signal."""

    def __init__(
        self,
        config: uvicorn.Config,
        app: Starlette,
        shutdown_timeout: float,
        on_started: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(config)
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
        services = getattr(self._app.state, "services", None)
        timer = None
        if services is not None:
            timer = asyncio.get_running_loop().call_later(self._shutdown_timeout, services.stop_requests)
        try:
            await super().shutdown(sockets)
        finally:
            if timer is not None:
                timer.cancel()


def serve(
    settings: Settings,
    *,
    log_level: str = "info",
    sockets: list[socket.socket] | None = None,
    on_started: Callable[[], object] | None = None,
) -> None:
    """Run the gateway until SIGTERM or SIGINT, then shut down gracefully.

    It listens on ``sockets`` when given (a worker of ``workers.py``), else binds its own;
    ``on_started`` is called once it serves.
    """
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        loop="auto",
        http="auto",
        # uvicorn's own deadline, after which it cancels what is left: only a backstop here.
        timeout_graceful_shutdown=int(settings.shutdown_timeout + STOP_GRACE_S),
    )
    GracefulServer(config, app, settings.shutdown_timeout, on_started).run(sockets)
