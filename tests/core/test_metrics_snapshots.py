"""Snapshots of metrics, added up: what ``serve --workers N`` exposes is what one gateway that
counted everything would."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson
import pytest

from genledger.core.generation import Generation
from genledger.metrics import Metrics, Snapshot

# Dyadic amounts (USD and seconds): sums of them are exact in any order, so expositions compare
# line for line (label sets may come in another order).
HALF_USD_PICO = 500_000_000_000
BASE = Generation(
    id="gen-1",
    key_id="k",
    created_at=datetime(2026, 11, 2, tzinfo=UTC),
    model="m",
    provider_name="Up",
    finish_reason="stop",
    tokens_prompt=8,
    tokens_completion=2,
)


def count(metrics: Metrics, step: int) -> None:
    """The ``step``-th of a mix of generations, attempts and errors."""
    generation = dataclasses.replace(
        BASE,
        model="m" if step % 3 else "n",
        streamed=step % 2 == 0,
        charge_pico=HALF_USD_PICO >> (step % 4),
        total_cost_pico=1000,
        upstream_cost_pico=1000 + step % 2,
    )
    metrics.recorded(generation, write_seconds=0.0625 * (step % 5))
    metrics.attempt("Up", "ok" if step % 4 else "overloaded", seconds=0.125 * step)
    if step % 3 == 0:
        metrics.error(529)


def lines(exposition: bytes) -> list[str]:
    return sorted(exposition.decode().splitlines())


def gateway(open_endpoints: list[str]) -> Metrics:
    metrics = Metrics()
    metrics.watch_circuits(lambda: open_endpoints)
    return metrics


def test_the_sum_of_the_workers_snapshots_exposes_what_one_gateway_counting_it_all_would() -> None:
    workers = [gateway(["up/a"]), gateway([]), gateway(["up/b", "up/a"])]
    whole = gateway(["up/a", "up/b"])
    for step in range(40):
        count(workers[step * 7 % 3], step)
        count(whole, step)
    total = Snapshot.total(worker.snapshot() for worker in workers)
    for worker in workers:  # whichever answers the scrape
        assert lines(worker.exposition(total)) == lines(whole.exposition())


def test_a_snapshot_exposes_exactly_the_live_values_and_is_a_copy() -> None:
    metrics = gateway(["up/a"])
    for step in range(7):
        count(metrics, step)
    snapshot = metrics.snapshot()
    assert metrics.exposition(snapshot) == metrics.exposition()
    exposed = metrics.exposition()
    count(metrics, 7)
    assert metrics.exposition(snapshot) == exposed


def test_snapshots_round_trip_through_json() -> None:
    metrics = gateway(["up/b", "up/a"])
    for step in range(9):
        count(metrics, step)
    snapshot = metrics.snapshot()
    assert Snapshot.from_json(orjson.loads(orjson.dumps(snapshot.to_json()))) == snapshot
    assert Snapshot.from_json(Snapshot().to_json()) == Snapshot()


def test_a_stopped_worker_keeps_its_counts_and_drops_its_gauges() -> None:
    stopped, serving = gateway(["up/a"]), gateway(["up/b"])
    count(stopped, 1)
    count(serving, 2)
    retired = stopped.snapshot().without_gauges()
    assert retired.counters == stopped.snapshot().counters and not retired.open_endpoints
    total = retired.plus(serving.snapshot())
    assert total.open_endpoints == {"up/b"}
    assert total.counters[("genledger_cost_usd", ("model",))] == {("m",): 0.25 + 0.125}


def test_families_counted_under_another_definition_add_up_apart_and_are_not_exposed() -> None:
    metrics = gateway([])
    count(metrics, 3)
    # A worker of another release: errors by status and route, ledger writes in other buckets.
    other = Snapshot(
        counters={("genledger_errors", ("status", "route")): {("529", "/x"): 4.0}},
        histograms={("genledger_ledger_write_seconds", (), (1.0,)): {(): [2.0, 1.0, 3.5]}},
    )
    total = Snapshot.total([metrics.snapshot(), other, other])
    assert total.counters[("genledger_errors", ("status", "route"))] == {("529", "/x"): 8.0}
    assert total.counters[("genledger_errors", ("status",))] == {("529",): 1.0}
    assert total.histograms[("genledger_ledger_write_seconds", (), (1.0,))] == {(): [4.0, 2.0, 7.0]}
    assert metrics.exposition(total) == metrics.exposition()


@pytest.mark.parametrize(
    "broken",
    [
        {"counters": [], "open_endpoints": []},
        {"counters": [], "histograms": [{"name": "h", "labels": [], "bounds": [1], "values": [[[], [1]]]}]},
        {"counters": [{"name": "c", "labels": [], "values": [[[], "many"]]}], "histograms": []},
    ],
)
def test_what_no_worker_wrote_is_refused(broken: dict) -> None:
    with pytest.raises((ValueError, KeyError)):
        Snapshot.from_json({"open_endpoints": [], **broken})
