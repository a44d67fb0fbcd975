"""Circuit breakers: an endpoint that keeps failing is skipped for a cool-down, then probed.

Closed: requests flow; ``failures`` consecutive failures open it. Open: the endpoint is
skipped until ``cooldown`` seconds have passed. Half-open: one request probes it; success
closes the circuit, failure opens it for another cool-down. State is per gateway instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing_since: float | None = None


class Breakers:
    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def allow(self, endpoint: str) -> bool:
        """Whether to try ``endpoint`` now (claiming the probe when the cool-down is over)."""
        circuit = self._circuits.get(endpoint)
        if circuit is None or circuit.opened_at is None:
            return True
        now = self._clock()
        if now - circuit.opened_at < self._cooldown:
            return False
        if circuit.probing_since is not None and now - circuit.probing_since < self._cooldown:
            return False  # another request is probing it
        circuit.probing_since = now
        return True

    def retry_after(self, endpoint: str) -> float:
        """Seconds until ``endpoint`` may be probed again (0 when it may be tried now)."""
        circuit = self._circuits.get(endpoint)
        if circuit is None or circuit.opened_at is None:
            return 0.0
        return max(self._cooldown - (self._clock() - circuit.opened_at), 0.0)

    def succeeded(self, endpoint: str) -> None:
        self._circuits.pop(endpoint, None)

    def failed(self, endpoint: str) -> None:
        circuit = self._circuits.setdefault(endpoint, _Circuit())
        circuit.failures += 1
        circuit.probing_since = None
        if circuit.opened_at is not None or circuit.failures >= self._threshold:
            circuit.opened_at = self._clock()

    def is_open(self, endpoint: str) -> bool:
        circuit = self._circuits.get(endpoint)
        return circuit is not None and circuit.opened_at is not None

    def open_endpoints(self) -> list[str]:
        return sorted(
            endpoint for endpoint, circuit in self._circuits.items() if circuit.opened_at is not None
        )
