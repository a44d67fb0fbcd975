"""SIGTERM: a graceful shutdown of ``genledger serve`` with streams open, on SQLite and PostgreSQL.

At the signal the gateway stops accepting; a stream that finishes within ``shutdown_timeout``
finishes as usual; streams still open at the deadline end with an error chunk, are recorded as
cancelled with the usage known so far, and give their reservations back; the ledger is
flushed and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import httpx
import orjson

from genledger.ledger import Ledger
from tests.deadlines import eventually
from tests.e2e.conftest import MODEL, gateway_settings
from tests.e2e.process import GatewayProcess
from tests.fakes import FakeOpenAIInThread
from tests.ledger.records import charged_to

SHUTDOWN_TIMEOUT_S = 6.0
OPEN_AT_DEADLINE = 3
EXIT_WITHIN_S = SHUTDOWN_TIMEOUT_S + 30


def chunks(lines: list[str]) -> list[dict]:
    return [orjson.loads(line[6:]) for line in lines if line.startswith("data: {")]


async def read_all(lines) -> list[str]:
    return [line async for line in lines if line]


async def stop_reading(readers: list[asyncio.Task]) -> None:
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


async def refused(url: str) -> bool:
    async with httpx.AsyncClient(timeout=2) as http:
        try:
            await http.get(f"{url}/health")
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
            # Refused, or taken from the listening socket's backlog as it closed and dropped
            # unanswered: either way no new request is served.
            return True
        return False


async def test_sigterm_lets_streams_finish_until_the_deadline_then_ends_and_records_the_rest(
    database_url: str, upstream: FakeOpenAIInThread, ledger: Ledger, tmp_path: Path
):
    settings = gateway_settings(database_url, upstream.api_url, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    settings["providers"]["fake"]["stream_idle_timeout"] = 300
    key, secret = await ledger.keys.create("shut-down", limit_pico=10**12)
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": MODEL, "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "go"}]}
    gateway = GatewayProcess(settings, tmp_path, "stopped").start()
    try:
        async with (
            httpx.AsyncClient(base_url=gateway.base_url, timeout=60, headers=headers) as http,
            contextlib.AsyncExitStack() as streams,
        ):
            # One stream that pauses briefly (it finishes within the grace), then streams that
            # stall far beyond it; each is answering before the signal.
            upstream.set_behavior("stall_mid_stream", times=1, delay=2.0, chunks=2)
            upstream.set_behavior("stall_mid_stream", times=OPEN_AT_DEADLINE, delay=600, chunks=2)
            readers = []
            for _ in range(1 + OPEN_AT_DEADLINE):
                response = await streams.enter_async_context(
                    http.stream("POST", "/chat/completions", json=body)
                )
                assert response.status_code == 200
                lines = response.aiter_lines()
                streams.push_async_callback(lines.aclose)
                first = await anext(lines)
                assert first.startswith("data: {")
                readers.append(asyncio.create_task(read_all(lines)))
            streams.push_async_callback(stop_reading, readers)  # first, on a failure
            # The short stream may have ended already on a loaded machine; the others are held.
            assert len(await ledger.keys.held(key.id)) >= OPEN_AT_DEADLINE

            signalled = time.monotonic()
            assert gateway.process is not None
            gateway.process.send_signal(signal.SIGTERM)
            # Within the grace, while the streams are still open, new connections are refused.
            assert await eventually(lambda: refused(gateway.url), within=SHUTDOWN_TIMEOUT_S / 2)
            assert gateway.process.poll() is None
            exit_status = await asyncio.to_thread(gateway.process.wait, EXIT_WITHIN_S)
            exited = time.monotonic() - signalled
            async with asyncio.timeout(30):
                finished, *stopped = await asyncio.gather(*readers)
    finally:
        gateway.kill()
    assert exit_status == 0, gateway.output()
    assert exited >= SHUTDOWN_TIMEOUT_S  # the open streams had their grace

    # The stream that finished within the grace: a normal end.
    assert finished[-1] == "data: [DONE]"
    assert chunks(finished)[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert not any("error" in chunk for chunk in chunks(finished))
    ended = [chunk for lines in stopped for chunk in chunks(lines) if "error" in chunk]
    assert len(ended) == OPEN_AT_DEADLINE
    for lines in stopped:
        assert lines[-1] == "data: [DONE]"
        error_chunk = next(chunk for chunk in chunks(lines) if "error" in chunk)
        assert error_chunk["error"]["code"] == 503
        assert "shutting down" in error_chunk["error"]["message"]
        assert error_chunk["choices"][0]["finish_reason"] == "error"

    # Recorded: the finished one as usual, the stopped ones as cancelled with what was known.
    ids = [chunks(lines)[0]["id"] for lines in (finished, *stopped)]
    records = [await ledger.generations.lookup(generation_id) for generation_id in ids]
    assert all(record is not None for record in records), ids
    assert records[0].cancelled is False and records[0].finish_reason in ("stop", "length")
    assert records[0].tokens_completion
    assert all(record.cancelled is True for record in records[1:])
    # Ended by the gateway with the error chunk its callers saw; charged for what was relayed.
    assert all(record.finish_reason == "error" and record.charge_pico > 0 for record in records[1:])
    state = await ledger.keys.find_by_id(key.id)
    assert state.reserved_pico == 0 and await ledger.keys.held(key.id) == ()
    assert state.usage_pico == await charged_to(ledger, key.id) == sum(r.charge_pico for r in records)
