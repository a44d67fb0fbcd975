"""Prometheus metrics of one gateway: generations, spend, upstream attempts, ledger writes.

Each app has its own registry (no process-wide state); ``GET /metrics`` exposes it to a
management key. Under ``serve --workers N``, every worker writes a :class:`Snapshot` of its
values for the others (``api/worker_metrics.py``), and a scrape exposes their sum.

The hot path counts in plain numbers (:class:`Counts`, :class:`Histograms`), read into metric
families only when scraped. prometheus_client's own counters take a lock and validate on
every increment, and a label set's child has to be looked up: nine increments a request
cost more than the request's JSON parsing. Every count is changed on the event loop only (as
is a scrape), so nothing is locked. Counters expose ``_total`` samples, without ``_created``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
CounterKey = tuple[str, Labels]
"""A counter family by its definition: its name and label names."""
HistogramKey = tuple[str, Labels, tuple[float, ...]]
"""A histogram family by its definition: its name, label names and bucket bounds."""


class Counts(Collector):
    """A counter family: its value for each label set, as a plain number."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.values: dict[Labels, float] = {}

    @property
    def key(self) -> CounterKey:
        return self.name, tuple(self.labels)

    def add(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def holding(self, values: Mapping[Labels, float]) -> Counts:
        """This family with ``values`` in place of its own."""
        family = Counts(self.name, self.documentation, self.labels)
        family.values = dict(values)
        return family

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

    @property
    def key(self) -> HistogramKey:
        return self.name, tuple(self.labels), self.bounds

    def holding(self, values: Mapping[Labels, Sequence[float]]) -> Histograms:
        """This family with ``values`` (each as in :attr:`values`) in place of its own."""
        family = Histograms(self.name, self.documentation, self.labels, self.bounds)
        family.values = {labels: list(counts) for labels, counts in values.items()}
        return family

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


@dataclass(frozen=True)
class Snapshot:
    """Metric values of one or more gateways (the workers of one ``serve``), to be added up.

    Families are keyed by their definition (:data:`CounterKey`, :data:`HistogramKey`): values a
    worker of another release counted under another definition (other labels, other buckets)
    add up only with their like, and a gateway exposes only those of its own definitions.
    ``open_endpoints`` is the gauge ``genledger_circuit_open``: an endpoint is open in the sum
    when it is open in any of the gateways added (each has its own breakers).
    """

    counters: Mapping[CounterKey, Mapping[Labels, float]] = field(default_factory=dict)
    histograms: Mapping[HistogramKey, Mapping[Labels, Sequence[float]]] = field(default_factory=dict)
    open_endpoints: frozenset[str] = frozenset()

    def plus(self, other: Snapshot) -> Snapshot:
        counters: dict[CounterKey, dict[Labels, float]] = {}
        for key, values in (*self.counters.items(), *other.counters.items()):
            into = counters.setdefault(key, {})
            for labels, value in values.items():
                into[labels] = into.get(labels, 0.0) + value
        histograms: dict[HistogramKey, dict[Labels, list[float]]] = {}
        for histogram, entries in (*self.histograms.items(), *other.histograms.items()):
            summed = histograms.setdefault(histogram, {})
            for labels, counts in entries.items():
                before = summed.get(labels)
                # As long as each other: the key holds the buckets, from_json the length.
                summed[labels] = list(counts) if before is None else _added(before, counts)
        return Snapshot(counters, histograms, self.open_endpoints | other.open_endpoints)

    @staticmethod
    def total(snapshots: Iterable[Snapshot]) -> Snapshot:
        total = Snapshot()
        for snapshot in snapshots:
            total = total.plus(snapshot)
        return total

    def without_gauges(self) -> Snapshot:
        """What is left of a gateway that stopped: its counts, none of its current state."""
        return Snapshot(self.counters, self.histograms)

    def to_json(self) -> dict[str, Any]:
        """As JSON values (label sets are lists; a histogram's values are its counts per
        bucket, +Inf last, then its sum)."""
        return {
            "counters": [
                {"name": name, "labels": list(labels), "values": [[list(k), v] for k, v in values.items()]}
                for (name, labels), values in self.counters.items()
            ],
            "histograms": [
                {
                    "name": name,
                    "labels": list(labels),
                    "bounds": list(bounds),
                    "values": [[list(k), list(counts)] for k, counts in values.items()],
                }
                for (name, labels, bounds), values in self.histograms.items()
            ],
            "open_endpoints": sorted(self.open_endpoints),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """The snapshot :meth:`to_json` gave. Raises ValueError (or KeyError, TypeError) for
        what it cannot have given."""
        counters: dict[CounterKey, dict[Labels, float]] = {}
        for family in data["counters"]:
            values = {tuple(map(str, labels)): float(value) for labels, value in family["values"]}
            counters[(str(family["name"]), tuple(map(str, family["labels"])))] = values
        histograms: dict[HistogramKey, dict[Labels, list[float]]] = {}
        for family in data["histograms"]:
            bounds = tuple(map(float, family["bounds"]))
            entries = {
                tuple(map(str, labels)): list(map(float, counts)) for labels, counts in family["values"]
            }
            if any(len(counts) != len(bounds) + 2 for counts in entries.values()):
                raise ValueError(f"a histogram of {family['name']} without a count per bucket and a sum")
            histograms[(str(family["name"]), tuple(map(str, family["labels"])), bounds)] = entries
        return cls(counters, histograms, frozenset(map(str, data["open_endpoints"])))


def _added(counts: Sequence[float], more: Sequence[float]) -> list[float]:
    return [a + b for a, b in zip(counts, more, strict=True)]


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
        # In the registry's order: the exposition of a snapshot lists them as the registry does.
        self._families: list[Counts | Histograms] = [
            self._generations,
            self._cost,
            self._tokens,
            self._attempts,
            self._upstream_seconds,
            self._errors,
            self._drift,
            self._write_seconds,
        ]
        for family in self._families:
            self.registry.register(family)
        self._circuits: OpenCircuits | None = None

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

    def watch_circuits(self, open_endpoints: Callable[[], list[str]]) -> None:
        """Expose ``genledger_circuit_open``: the endpoints ``open_endpoints()`` names when scraped."""
        self._circuits = OpenCircuits(open_endpoints)
        self.registry.register(self._circuits)

    def snapshot(self) -> Snapshot:
        """The values now, copied: later counts do not change it."""
        counters: dict[CounterKey, Mapping[Labels, float]] = {}
        histograms: dict[HistogramKey, Mapping[Labels, Sequence[float]]] = {}
        for family in self._families:
            if isinstance(family, Counts):
                counters[family.key] = dict(family.values)
            else:
                histograms[family.key] = {labels: list(counts) for labels, counts in family.values.items()}
        open_endpoints = frozenset(self._circuits.open_endpoints() if self._circuits else ())
        return Snapshot(counters, histograms, open_endpoints)

    def exposition(self, snapshot: Snapshot | None = None) -> bytes:
        """The text exposition of this gateway's values, or of ``snapshot``'s under this
        gateway's families (those it defines otherwise are left out)."""
        if snapshot is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry(auto_describe=False)
        for family in self._families:
            if isinstance(family, Counts):
                registry.register(family.holding(snapshot.counters.get(family.key, {})))
            else:
                registry.register(family.holding(snapshot.histograms.get(family.key, {})))
        if self._circuits is not None:
            registry.register(OpenCircuits(lambda: sorted(snapshot.open_endpoints)))
        return generate_latest(registry)


class OpenCircuits(Collector):
    """``genledger_circuit_open{endpoint}``: 1 for each endpoint whose circuit is open."""

    def __init__(self, open_endpoints: Callable[[], list[str]]) -> None:
        self.open_endpoints = open_endpoints

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "genledger_circuit_open",
            "Provider endpoints currently skipped by their circuit breaker",
            labels=["endpoint"],
        )
        for endpoint in self.open_endpoints():
            family.add_metric([endpoint], 1)
        yield family
