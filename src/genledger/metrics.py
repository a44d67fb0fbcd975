"""Prometheus metrics of one gateway: generations, spend, upstream attempts, ledger writes.

Each app has its own registry (no process-wide state); ``GET /metrics`` exposes it to a
management key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from genledger.core.generation import Generation
from genledger.core.money import to_usd
from genledger.core.reconcile import drifted

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_WRITE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class Metrics:
    def __init__(self, *, drift_tolerance_pico: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._drift_tolerance_pico = drift_tolerance_pico
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._recorded: dict[tuple[str, str | None, bool | None, str | None], tuple[Any, Any, Any, Any]] = {}
        self._generations = Counter(
            "genledger_generations",
            "Generations recorded",
            ["model", "provider", "streamed", "finish_reason"],
            registry=self.registry,
        )
        self._cost = Counter(
            "genledger_cost_usd", "USD charged for generations", ["model"], registry=self.registry
        )
        self._tokens = Counter(
            "genledger_tokens", "Tokens of recorded generations", ["model", "kind"], registry=self.registry
        )
        self._attempts = Counter(
            "genledger_upstream_attempts",
            "Calls to provider endpoints, by outcome (ok or the failure kind)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self._upstream_seconds = Histogram(
            "genledger_upstream_seconds",
            "Time to a provider's answer (streams: to the first chunk)",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._errors = Counter(
            "genledger_errors", "Error responses, by status", ["status"], registry=self.registry
        )
        self._drift = Counter(
            "genledger_upstream_cost_drift",
            "Generations whose upstream-reported cost differs from ours beyond [audit] cost_tolerance",
            ["provider"],
            registry=self.registry,
        )
        self._write_seconds = Histogram(
            "genledger_ledger_write_seconds",
            "Time from handing a generation to the ledger until it was committed",
            buckets=_WRITE_BUCKETS,
            registry=self.registry,
        )

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        # labels() validates and locks on every call; on the hot path, look each child up once.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def recorded(self, generation: Generation, write_seconds: float) -> None:
        labels = (generation.model, generation.provider_name, generation.streamed, generation.finish_reason)
        counted = self._recorded.get(labels)
        if counted is None:
            counted = self._recorded[labels] = self._recorded_children(*labels)
        generations, cost, prompt, completion = counted
        generations.inc()
        if generation.charge_pico:
            cost.inc(to_usd(generation.charge_pico))
        prompt.inc(generation.tokens_prompt or 0)
        completion.inc(generation.tokens_completion or 0)
        if drifted(generation, self._drift_tolerance_pico):
            self._child(self._drift, generation.provider_name or "").inc()
        self._write_seconds.observe(write_seconds)

    def _recorded_children(
        self, model: str, provider_name: str | None, streamed: bool | None, finish_reason: str | None
    ) -> tuple[Any, Any, Any, Any]:
        """The children a generation of these labels counts in: looked up once per label set."""
        provider, finish = provider_name or "", finish_reason or ""
        return (
            self._generations.labels(model, provider, "true" if streamed else "false", finish),
            self._cost.labels(model),
            self._tokens.labels(model, "prompt"),
            self._tokens.labels(model, "completion"),
        )

    def attempt(self, provider: str, outcome: str, seconds: float) -> None:
        self._child(self._attempts, provider, outcome).inc()
        if outcome == "ok":
            self._child(self._upstream_seconds, provider).observe(seconds)

    def error(self, status: int) -> None:
        self._errors.labels(str(status)).inc()

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
