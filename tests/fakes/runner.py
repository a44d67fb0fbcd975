"""Ways to run a fake upstream: on the current event loop, in a daemon thread, or as a process (CLI)."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from aiohttp import web

from tests.fakes.control import behavior_from_json, parse_spec
from tests.fakes.server import FakeUpstream

T = TypeVar("T")
StatsPredicate = Callable[[dict[str, Any]], bool]

SHUTDOWN_TIMEOUT = 0.1  # seconds granted to in-flight (e.g. stalled) requests when a fake stops
BACKLOG = 4096


class _Controls:
    """The control methods both handles share; ``_call`` runs a function on the server's loop."""

    upstream: FakeUpstream
    host: str
    port: int

    def _call(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """``http://host:port`` (no path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL the provider's SDK expects: ``.../v1`` for OpenAI, the bare root for Anthropic."""
        return self.url + self.upstream.base_path

    @property
    def api_url(self) -> str:
        """``http://host:port/v1`` for both fakes."""
        return self.url + "/v1"

    def stats(self) -> dict[str, Any]:
        """A snapshot: requests, by_behavior, open/completed/cancelled streams, last_request ..."""
        return self._call(self.upstream.state.snapshot)

    def requests(self) -> list[dict[str, Any]]:
        """The recorded generation requests (last 100), oldest first: method, path, headers, json."""
        return self._call(self.upstream.state.history)

    def set_behavior(
        self, behavior: str, *, times: int | None = None, model: str | None = None, **params: Any
    ) -> None:
        """Queue ``behavior`` for ``times`` requests (None: standing until reset), optionally for ``model``.

        ``behavior`` is a name or a full spec (``"status:429;retry_after=0.1"``); ``params`` add to it.
        """
        data: dict[str, Any] = {"behavior": behavior, "times": times, "model": model, **params}
        parsed, times, model = behavior_from_json(data)
        self._call(lambda: self.upstream.state.set_behavior(parsed, times, model))

    def reset(self) -> None:
        """Drop queued/standing behaviours, zero the counters and the request history."""
        self._call(self.upstream.state.reset)


class FakeServer(_Controls):
    """A fake upstream served on the running event loop (see :func:`serve`). Methods are synchronous."""

    def __init__(self, upstream: FakeUpstream, runner: web.AppRunner, host: str, port: int) -> None:
        self.upstream = upstream
        self.runner = runner
        self.host = host
        self.port = port

    def _call(self, fn: Callable[[], T]) -> T:
        return fn()

    async def wait_until(self, predicate: StatsPredicate, within: float = 5.0) -> dict[str, Any]:
        """Poll :meth:`stats` until ``predicate(stats)`` holds; the stats, or TimeoutError."""
        deadline = time.monotonic() + within
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake upstream stats never satisfied the predicate: {stats}")
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serve(upstream: FakeUpstream, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[FakeServer]:
    """Serve ``upstream`` on the current event loop until the block exits (port 0: a free port)."""
    runner = web.AppRunner(
        upstream.make_app(),
        access_log=None,
        handler_cancellation=True,  # a client disconnect cancels the handler: stats see it at once
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=BACKLOG)
        await site.start()
        bound_port = port or _bound_port(runner)
        yield FakeServer(upstream, runner, host, bound_port)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """A test's own small aiohttp ``app`` on a free port of ``host`` until the block exits; its port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        yield _bound_port(runner)
    finally:
        await runner.cleanup()


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released): connecting to it is refused.

    The fakes cannot refuse connections while running; point the gateway here to test that.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError(f"cannot find the bound port in {runner.addresses!r}")


class FakeServerInThread(_Controls):
    """A fake upstream on its own event loop in a daemon thread, for sync tests and other-thread gateways.

    ``with FakeOpenAIInThread() as fake: ...`` or ``fake = FakeOpenAIInThread().start()`` / ``fake.stop()``.
    Keyword options go to the upstream class (``completion_tokens``, ``delay_ms``, ``models``).
    """

    upstream_class: ClassVar[type[FakeUpstream]]

    def __init__(
        self,
        upstream: FakeUpstream | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        self.upstream = upstream if upstream is not None else self.upstream_class(**options)
        self.host = host
        self.port = port
        self._requested_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name=f"fake-{self.upstream.kind}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the fake upstream did not start")
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have just closed
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        async with serve(self.upstream, self.host, self._requested_port) as server:
            self.port = server.port
            self._ready.set()
            await self._stop_event.wait()

    def _call(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("the fake upstream is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=10)

    def wait_until(self, predicate: StatsPredicate, within: float = 5.0) -> dict[str, Any]:
        """Poll :meth:`stats` until ``predicate(stats)`` holds; the stats, or TimeoutError."""
        deadline = time.monotonic() + within
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake upstream stats never satisfied the predicate: {stats}")
            time.sleep(0.01)


# ------------------------------------------------------------------------------------------------- CLI


def run_cli(upstream_class: type[FakeUpstream], argv: Sequence[str] | None, default_port: int) -> None:
    """``python -m tests.fakes.<kind>_upstream --port N``: serve until SIGINT/SIGTERM (uvloop if present).

    Prints the base URL on stdout (one line, flushed) once listening.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m tests.fakes.{upstream_class.kind}_upstream",
        description=f"Fake {upstream_class.kind} upstream for genledger tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="latency added to every answer")
    parser.add_argument("--tokens", type=int, default=None, help="default completion length")
    parser.add_argument("--behavior", default=None, help="standing behaviour spec, e.g. 'slow:0.1'")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"delay_ms": args.delay_ms}
    if args.tokens is not None:
        options["completion_tokens"] = args.tokens
    upstream = upstream_class(**options)
    if args.behavior:
        upstream.state.set_behavior(parse_spec(args.behavior))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with serve(upstream, args.host, args.port) as server:
            print(server.base_url, flush=True)
            await stop.wait()

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
    sys.exit(0)


__all__ = ["FakeServer", "FakeServerInThread", "run_cli", "serve", "unused_port"]
