"""A real genledger gateway on 127.0.0.1 for end-to-end tests: uvicorn in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

import uvicorn

from genledger.api import create_app
from genledger.api.server import server_config
from genledger.config import Settings, load_settings
from genledger.ledger import Ledger

T = TypeVar("T")


def run_with_ledger(database_url: str, work: Callable[[Ledger], Awaitable[T]]) -> T:
    """Run ``work`` against the ledger from outside the server (as the CLI does)."""

    async def main() -> T:
        ledger = await Ledger.open(database_url)
        try:
            return await work(ledger)
        finally:
            await ledger.close()

    return asyncio.run(main())


def create_key(database_url: str, name: str, **kwargs: Any) -> str:
    async def create(ledger: Ledger) -> str:
        return (await ledger.keys.create(name, **kwargs))[1]

    return run_with_ledger(database_url, create)


class GatewayServer:
    """``with GatewayServer(settings) as gw:`` serves on ``gw.base_url`` until the block ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/api/v1"
        self.log_lines: list[bytes] = []  # the request log, kept here rather than on stderr
        self.app = create_app(settings, log_write=self.log_lines.append)
        # The server `genledger serve` runs (its timeouts, its protocol with the header deadline).
        config = server_config(self.app, settings)
        config.lifespan, config.timeout_graceful_shutdown = "on", 5
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="genledger-test-gateway", daemon=True)

    @classmethod
    def build(cls, **settings: Any) -> Self:
        return cls(load_settings(None, **settings))

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def __enter__(self) -> Self:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("the gateway did not start")
            threading.Event().wait(0.01)
        raise RuntimeError("the gateway did not start within 5 s")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()

    @property
    def services(self) -> Any:
        return self.app.services


def seed_generations(database_url: str, key_name: str, make: Callable[[str, int], Any], count: int) -> None:
    """Insert ``count`` generations ``make(key_id, i)`` for the key ``key_name`` (and their metadata pairs).

    Straight into the real ledger's table (no charges): fast enough for thousands of rows on
    both databases, for tests of reading them back.
    """
    from genledger.ledger.generations import generation_row, metadata_rows
    from genledger.ledger.schema import generation_metadata, generations

    async def seed(ledger: Ledger) -> None:
        key = await ledger.keys.find_by_name(key_name)
        assert key is not None, key_name
        made = [make(key.id, i) for i in range(count)]
        pairs = [pair for generation in made for pair in metadata_rows(generation)]
        async with ledger.engine.begin() as connection:
            await connection.execute(generations.insert(), [generation_row(g) for g in made])
            if pairs:  # as the ledger's writer does: the pairs the list's metadata filter walks
                await connection.execute(generation_metadata.insert(), pairs)

    run_with_ledger(database_url, seed)
