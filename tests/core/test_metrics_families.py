"""The plain counts expose exactly what prometheus_client's own counters and histograms would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from genledger.metrics import Counts, Histograms

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OBSERVED = [0.0, 0.005, 0.0051, 0.3, 1, 7.5, 120, 121, 1e9, 0.01]


def exposed(*collectors) -> list[str]:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_counts_expose_as_prometheus_counters() -> None:
    registry = CollectorRegistry()
    theirs = Counter("x_requests", "Requests", ["model", "kind"], registry=registry)
    ours = Counts("x_requests", "Requests", ["model", "kind"])
    for labels, amount in [(("a", "p"), 1), (("a", "c"), 2.5), (("b", "p"), 0), (("a", "p"), 3)]:
        theirs.labels(*labels).inc(amount)
        ours.add(labels, amount)
    expected = [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]
    assert exposed(ours) == expected
    assert ours.values[("a", "p")] == 4


def test_histograms_expose_as_prometheus_histograms() -> None:
    registry = CollectorRegistry()
    theirs = Histogram("x_seconds", "Time", ["provider"], buckets=BUCKETS, registry=registry)
    plain = Histogram("y_seconds", "Time", buckets=BUCKETS, registry=registry)
    ours = Histograms("x_seconds", "Time", ["provider"], BUCKETS)
    ours_plain = Histograms("y_seconds", "Time", [], BUCKETS)
    for i, value in enumerate(OBSERVED):
        provider = "p" if i % 3 else "q"
        theirs.labels(provider).observe(value)
        ours.observe((provider,), value)
        plain.observe(value)
        ours_plain.observe((), value)
    expected = [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]
    assert exposed(ours, ours_plain) == expected
