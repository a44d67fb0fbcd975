"""Leases on this instance's reservations, and the sweep that gives back dead instances' ones.

Every reservation of a key's credit names the instance holding it and a lease. While the
instance lives it renews the leases of everything it holds, every third of ``lease``; a
reservation whose lease ran out belongs to an instance that died (``kill -9``, power loss)
and is given back to its key by whichever instance sweeps next (each one sweeps at start-up
and then every third of ``lease``). So a crashed instance's credit comes back at most about
``lease * 4 / 3`` after its last renewal, and never while the request could still be charged.

Leases are in UTC by each instance's clock: instances on several machines need clocks that
agree to well within ``lease``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from genledger.core.keys import Hold
from genledger.core.stores import KeyStore

log = logging.getLogger("genledger.leases")


def new_owner() -> str:
    """A name for this instance that no other ever has: its host and pid, made unique."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Leases:
    """Holds this instance's reservations: hands out :class:`Hold`, renews, sweeps."""

    def __init__(self, keys: KeyStore, lease: float, *, owner: str | None = None) -> None:
        self._keys = keys
        self._lease = timedelta(seconds=lease)
        self.owner = owner or new_owner()
        self._task: asyncio.Task[None] | None = None

    def hold(self, hold_id: str) -> Hold:
        return Hold(hold_id, self.owner, datetime.now(UTC) + self._lease)

    async def tick(self) -> int:
        """Renew this instance's leases, then give back expired ones; how many were given back."""
        now = datetime.now(UTC)
        await self._keys.renew(self.owner, now + self._lease)
        reclaimed = await self._keys.reclaim(expired_before=now)
        if reclaimed:
            log.warning("gave back %d reservation(s) of instances whose lease ran out", reclaimed)
        return reclaimed

    async def _run(self) -> None:
        interval = self._lease.total_seconds() / 3
        while True:
            try:
                await self.tick()
            except Exception:
                # The database may be away for a while; the leases last three intervals.
                log.warning("renewing reservation leases failed", exc_info=True)
            await asyncio.sleep(interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="genledger-leases")

    async def stop(self) -> None:
        """Stop renewing, and give back whatever this instance still holds."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            released = await self._keys.reclaim(owner=self.owner)
        except Exception:
            log.warning("giving back this instance's reservations failed", exc_info=True)
            return
        if released:
            log.warning("gave back %d reservation(s) still held at shutdown", released)
