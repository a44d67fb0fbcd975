"""Failed authentications counted per source address, to slow down key guessing.

An address that fails ``limit`` times within ``window`` seconds (a fixed window from its
first failure) is refused until that window ends; ``exempt`` addresses and networks (a
reverse proxy on the same host, through which every caller comes) are never counted, however
an address is written (``::1`` is ``0:0:0:0:0:0:0:1``; an IPv4 address is also its IPv4-mapped
IPv6 form, as a dual-stack socket reports it). In process memory: each
instance counts the failures it saw (``limits/shared_auth_failures.py`` adds Redis's count).
The table is bounded (``max_addresses``): when full of live entries it is emptied, so a flood
of addresses costs memory, never correctness for the callers that authenticate.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Collection
from typing import Protocol

DEFAULT_MAX_ADDRESSES = 100_000


class AuthFailureCounter(Protocol):
    """What the HTTP edge needs: count a failure, ask whether an address must wait, close."""

    def retry_after(self, address: str) -> float | None: ...

    async def failed(self, address: str) -> None: ...

    async def aclose(self) -> None: ...


class AuthFailures:
    """How many times each address failed to authenticate lately, and whether it must wait."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        exempt: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = DEFAULT_MAX_ADDRESSES,
    ) -> None:
        self.limit = limit
        # ValueError for an entry that is neither an address nor a network (config checks them).
        self._exempt = tuple(_unmapped(ipaddress.ip_network(entry, strict=False)) for entry in exempt)
        self.window = window
        self._clock = clock
        self._max = max_addresses
        self._counts: dict[str, tuple[float, int]] = {}  # address -> (window's end, failures)

    def retry_after(self, address: str) -> float | None:
        """Seconds ``address`` must wait before trying again; ``None`` when it need not."""
        entry = self._counts.get(address)
        if entry is None:
            return None
        ends, failures = entry
        now = self._clock()
        if now >= ends:
            del self._counts[address]
            return None
        return ends - now if failures >= self.limit else None

    def exempt(self, address: str) -> bool:
        """Whether ``address`` is in an exempt network (an address that is not an IP one is not)."""
        if not self._exempt:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._exempt)

    async def failed(self, address: str) -> None:
        """``address`` failed to authenticate once more (an ``exempt`` one is not counted)."""
        self.count(address)

    def count(self, address: str) -> None:
        if self.exempt(address):
            return
        now = self._clock()
        entry = self._counts.get(address)
        if entry is None or now >= entry[0]:
            if len(self._counts) >= self._max:
                self._prune(now)
            self._counts[address] = (now + self.window, 1)
        else:
            self._counts[address] = (entry[0], entry[1] + 1)

    def block(self, address: str, seconds: float) -> None:
        """Refuse ``address`` for ``seconds`` from now (others counted its failures)."""
        ends = self._clock() + seconds
        entry = self._counts.get(address)
        if entry is None and len(self._counts) >= self._max:
            self._prune(self._clock())
        self._counts[address] = (max(ends, entry[0]) if entry else ends, self.limit)

    async def aclose(self) -> None:
        """Nothing to release in memory (the shared counter closes its connection)."""

    def _prune(self, now: float) -> None:
        self._counts = {a: e for a, e in self._counts.items() if e[0] > now}
        if len(self._counts) >= self._max:
            self._counts.clear()


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmapped(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An exempt entry written IPv4-mapped (``::ffff:10.0.0.1``, ``::ffff:10.0.0.0/104``) as the
    IPv4 network it is: a caller's mapped address is compared as IPv4 too."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        first = network.network_address.ipv4_mapped
        assert first is not None
        return ipaddress.ip_network(f"{first}/{network.prefixlen - 96}")
    return network
