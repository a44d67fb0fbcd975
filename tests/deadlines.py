"""Waiting for a condition the test cannot be told about, with a deadline instead of a guess."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(condition: Callable[[], Awaitable[bool]], *, within: float = 5.0) -> bool:
    """Whether ``condition()`` comes true within ``within`` seconds (checked every 20 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
