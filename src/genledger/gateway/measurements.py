"""What this gateway measured of each provider endpoint: latency and throughput, recently.

``provider.sort`` orders endpoints by these (``latency``: lowest median first;
``throughput``: highest median first), and the catalog's endpoint list shows their
percentiles. Samples older than :data:`WINDOW_S` are forgotten; at most
:data:`MAX_SAMPLES` are kept per endpoint. State is per gateway instance.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from genledger.core.records import record

WINDOW_S = 30 * 60.0
MAX_SAMPLES = 256


@record
class Percentiles:
    p50: float
    p75: float
    p90: float
    p99: float


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


class _Series:
    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=MAX_SAMPLES)

    def recent(self, now: float) -> list[float]:
        while self.samples and now - self.samples[0][0] > WINDOW_S:
            self.samples.popleft()
        return [value for _, value in self.samples]


class Measurements:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._latency: dict[str, _Series] = {}
        self._throughput: dict[str, _Series] = {}

    def latency(self, endpoint: str, milliseconds: float) -> None:
        """Time to the first token (a stream) or to the whole answer, of one served request."""
        self._add(self._latency, endpoint, milliseconds)

    def throughput(self, endpoint: str, tokens_per_second: float) -> None:
        """Output tokens a second of one served generation."""
        self._add(self._throughput, endpoint, tokens_per_second)

    def _add(self, series: dict[str, _Series], endpoint: str, value: float) -> None:
        found = series.get(endpoint)
        if found is None:  # not setdefault: that would build a series for every sample
            found = series[endpoint] = _Series()
        found.samples.append((self._clock(), value))

    def _stats(self, series: dict[str, _Series], endpoint: str) -> Percentiles | None:
        found = series.get(endpoint)
        values = sorted(found.recent(self._clock())) if found is not None else []
        if not values:
            return None
        return Percentiles(*(_percentile(values, f) for f in (0.5, 0.75, 0.9, 0.99)))

    def latency_ms(self, endpoint: str) -> Percentiles | None:
        """Latency percentiles over the window; None when nothing was measured."""
        return self._stats(self._latency, endpoint)

    def tokens_per_second(self, endpoint: str) -> Percentiles | None:
        """Throughput percentiles over the window; None when nothing was measured."""
        return self._stats(self._throughput, endpoint)
