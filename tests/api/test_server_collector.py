"""Once serving, the collector leaves start-up's objects alone, and walks the young
generation only after many more allocations than CPython's default."""

from __future__ import annotations

import asyncio
import gc

import uvicorn

from genledger.api.router import App
from genledger.api.server import YOUNG_COLLECTION_THRESHOLD, GracefulServer
from tests.deadlines import eventually


async def test_a_started_server_freezes_what_start_up_built() -> None:
    assert gc.get_freeze_count() == 0
    before = gc.get_threshold()
    assert before[0] < YOUNG_COLLECTION_THRESHOLD
    app = App([], edge=lambda router: router)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = GracefulServer(config, app, shutdown_timeout=1.0)
    serving = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return bool(server.started)

        assert await eventually(started, within=10)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *before[1:])
    finally:
        server.should_exit = True
        await serving
        gc.unfreeze()
        gc.set_threshold(*before)
