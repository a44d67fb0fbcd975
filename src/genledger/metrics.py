"""Prometheus metrics of one gateway: generations, spend, upstream attempts, ledger writes.

Each app has its own registry (no process-wide state); ``GET /metrics`` exposes it to a
management key.

The hot path counts in plain numbers (:class:`Counts`, :class:`Histograms`), read into metric
families only when scraped. prometheus_client's own counters take a lock and validate on
every increment, and a label set's child has to be looked up: nine increments a request
cost more than the request's JSON parsing. Every count is changed on the event loop only (as
is a scrape), so nothing is locked. Counters expose ``_total`` samples, without ``_created``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from genledger.core.generation import Generation
from genledger.core.money import to_usd
from genledger.core.reconcile import drifted

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_WRITE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)

Labels = tuple[str, ...]


class Counts(Collector):
    """A counter family: its value for each label set, as a plain number."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.values: dict[Labels, float] = {}

    def add(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        yield family


class Histograms(Collector):
    """A histogram family: for each label set, a count per bucket and the sum of what was observed."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.bounds = tuple(float(bound) for bound in buckets)
        names = [floatToGoString(bound) for bound in self.bounds]  # type: ignore[no-untyped-call]
        self._bucket_names = [*names, "+Inf"]
        self.values: dict[Labels, list[float]] = {}  # a count per bucket (+Inf last), then the sum

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.values.get(labels)
        if counts is None:
            counts = self.values[labels] = [0.0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        counts[-1] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, counts in self.values.items():
            cumulative, buckets = 0.0, []
            for bucket_name, count in zip(self._bucket_names, counts, strict=False):
                cumulative += count
                buckets.append((bucket_name, cumulative))
            family.add_metric(list(labels), buckets, counts[-1])
        yield family


class Metrics:
    def __init__(self, *, drift_tolerance_pico: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._drift_tolerance_pico = drift_tolerance_pico
        generation_labels = ["model", "provider", "streamed", "finish_reason"]
        self._generations = Counts("genledger_generations", "Generations recorded", generation_labels)
        self._cost = Counts("genledger_cost_usd", "USD charged for generations", ["model"])
        self._tokens = Counts("genledger_tokens", "Tokens of recorded generations", ["model", "kind"])
        self._attempts = Counts(
            "genledger_upstream_attempts",
            "Calls to provider endpoints, by outcome (ok or the failure kind)",
            ["provider", "outcome"],
        )
        self._upstream_seconds = Histograms(
            "genledger_upstream_seconds",
            "Time to a provider's answer (streams: to the first chunk)",
            ["provider"],
            _LATENCY_BUCKETS,
        )
        self._errors = Counts("genledger_errors", "Error responses, by status", ["status"])
        self._drift = Counts(
            "genledger_upstream_cost_drift",
            "Generations whose upstream-reported cost differs from ours beyond [audit] cost_tolerance",
            ["provider"],
        )
        self._write_seconds = Histograms(
            "genledger_ledger_write_seconds",
            "Time from handing a generation to the ledger until it was committed",
            [],
            _WRITE_BUCKETS,
        )
        for family in (
            self._generations,
            self._cost,
            self._tokens,
            self._attempts,
            self._upstream_seconds,
            self._errors,
            self._drift,
            self._write_seconds,
        ):
            self.registry.register(family)

    def recorded(self, generation: Generation, write_seconds: float) -> None:
        model = generation.model
        provider = generation.provider_name or ""
        streamed = "true" if generation.streamed else "false"
        self._generations.add((model, provider, streamed, generation.finish_reason or ""))
        if generation.charge_pico:
            self._cost.add((model,), to_usd(generation.charge_pico))
        self._tokens.add((model, "prompt"), generation.tokens_prompt or 0)
        self._tokens.add((model, "completion"), generation.tokens_completion or 0)
        if drifted(generation, self._drift_tolerance_pico):
            self._drift.add((provider,))
        self._write_seconds.observe((), write_seconds)

    def attempt(self, provider: str, outcome: str, seconds: float) -> None:
        self._attempts.add((provider, outcome))
        if outcome == "ok":
            self._upstream_seconds.observe((provider,), seconds)

    def error(self, status: int) -> None:
        self._errors.add((str(status),))

    def watch(self, collector: Collector) -> None:
        """Add a collector read at scrape time (for state such as open circuits)."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class OpenCircuits(Collector):
    """``genledger_circuit_open{endpoint}``: 1 for each endpoint whose circuit is open."""

    def __init__(self, open_endpoints: Callable[[], list[str]]) -> None:
        self._open_endpoints = open_endpoints

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "genledger_circuit_open",
            "Provider endpoints currently skipped by their circuit breaker",
            labels=["endpoint"],
        )
        for endpoint in self._open_endpoints():
            family.add_metric([endpoint], 1)
        yield family
