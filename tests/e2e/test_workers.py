"""``genledger serve --workers 2``: one port, two processes, on SQLite and PostgreSQL with Redis limits.

Under a steady load: a worker killed with ``kill -9`` is replaced, a SIGHUP replaces every
worker while the port keeps answering, SIGTERM ends it all with exit status 0, and every
200 the callers saw has its one record in the ledger. Whichever worker a scrape of /metrics
reaches, it reports the totals of them all, and a rolling restart loses none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from genledger.api.worker_metrics import SNAPSHOT_INTERVAL_S, SnapshotFolder
from genledger.api.workers import WorkersError, shared_settings, worker_count
from genledger.config import Settings
from genledger.ledger import Ledger
from genledger.ledger.schema import generations
from genledger.metrics import Snapshot
from tests.e2e.conftest import MODEL, gateway_settings
from tests.e2e.process import GatewayProcess
from tests.fakes import FakeOpenAIInThread
from tests.services import redis_url

CALLERS = 3
BODY = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hello"}]}


def workers_of(parent: int) -> set[int]:
    """The worker processes ``parent`` started (multiprocessing's spawned children)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in command:
            found.add(int(entry.name))
    return found


async def until(condition: Callable[[], bool], within: float = 60, why: Callable[[], object] = str) -> None:
    """Return once ``condition()`` holds; fail the test after ``within`` seconds, saying ``why()``."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"not true within {within}s: {why()}"
        await asyncio.sleep(0.05)


class Load:
    """``callers`` callers in a loop until stopped: each request on a new connection, or with
    ``keep_alive`` each caller's on its one connection, every other one streamed."""

    def __init__(
        self, base_url: str, secret: str, *, keep_alive: bool = False, callers: int = CALLERS
    ) -> None:
        self.base_url = base_url
        self.callers = callers
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.keep_alive = keep_alive
        self.ok: list[str] = []
        self.failed: list[str] = []
        self.stopped = asyncio.Event()

    async def _caller(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=1 if self.keep_alive else 0)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30, limits=limits) as http:
            while not self.stopped.is_set():
                try:
                    if self.keep_alive and len(self.ok) % 2:
                        await self._stream(http)
                    else:
                        await self._complete(http)
                except httpx.TransportError as exc:
                    self.failed.append(repr(exc))

    async def _complete(self, http: httpx.AsyncClient) -> None:
        response = await http.post("/chat/completions", json=BODY, headers=self.headers)
        if response.status_code == 200:
            self.ok.append(response.json()["id"])
        else:
            self.failed.append(f"{response.status_code} {response.text}")

    async def _stream(self, http: httpx.AsyncClient) -> None:
        body = {**BODY, "stream": True}
        async with http.stream("POST", "/chat/completions", json=body, headers=self.headers) as response:
            lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
        if response.status_code == 200 and lines[-1:] == ["data: [DONE]"] and "error" not in lines[0]:
            self.ok.append(orjson.loads(lines[0].removeprefix("data: "))["id"])
        else:
            self.failed.append(f"{response.status_code} {lines[-3:]}")

    async def run(self) -> None:
        await asyncio.gather(*(self._caller() for _ in range(self.callers)))

    async def served(self, more: int) -> None:
        """Wait until ``more`` further requests succeeded."""
        target = len(self.ok) + more
        await until(lambda: len(self.ok) >= target, within=60, why=lambda: self.failed[-3:])


async def test_two_workers_survive_a_kill_and_a_rolling_restart_and_record_every_answer(
    database_url: str, upstream: FakeOpenAIInThread, ledger: Ledger, tmp_path: Path
):
    settings = gateway_settings(
        database_url, upstream.api_url, limits={"backend": "redis", "redis_url": redis_url()}
    )
    key, secret = await ledger.keys.create("two-workers")
    gateway = GatewayProcess(settings, tmp_path, "workers", log_level="info", args=["--workers", "2"]).start()

    def log_tail() -> str:
        return "\n".join(gateway.output().splitlines()[-20:])

    try:
        await until(lambda: "2 workers serving" in gateway.output(), within=60, why=log_tail)
        load = Load(gateway.base_url, secret)
        running = asyncio.create_task(load.run())
        await load.served(10)

        # kill -9 of one worker: the other keeps serving, and a replacement comes.
        first = workers_of(gateway.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        await until(lambda: len(workers_of(gateway.pid) - first) == 1, within=60, why=log_tail)
        await until(lambda: len(workers_of(gateway.pid)) == 2, within=60, why=log_tail)
        await load.served(10)
        # Only the killed worker's requests in flight may have failed, as dropped connections.
        lost_to_kill = len(load.failed)
        assert lost_to_kill <= CALLERS, load.failed
        assert all("Error" in failure for failure in load.failed), load.failed

        # SIGHUP: every worker replaced, one after the other, and no request fails meanwhile.
        before = workers_of(gateway.pid)
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGHUP)
        await until(lambda: not (workers_of(gateway.pid) & before), within=120, why=log_tail)
        await until(lambda: len(workers_of(gateway.pid)) == 2, within=60, why=log_tail)
        await load.served(10)
        assert load.failed[lost_to_kill:] == []

        load.stopped.set()
        await asyncio.wait_for(running, 60)
        assert gateway.terminate(within=60) == 0
    finally:
        gateway.kill()

    async with ledger.engine.connect() as connection:
        query = select(generations.c.id).where(generations.c.key_id == key.id)
        recorded = set((await connection.execute(query)).scalars())
    answered = set(load.ok)
    assert len(answered) == len(load.ok)  # no answer given twice
    assert answered <= recorded, f"answered, not recorded: {answered - recorded}"
    # A request of the killed worker can have been recorded (before its answer's last byte)
    # and never answered: one at most per caller then in flight, which failed for it.
    assert len(recorded - answered) <= lost_to_kill


async def test_a_rolling_restart_drops_no_request_of_callers_that_keep_their_connections_alive(
    upstream: FakeOpenAIInThread, tmp_path: Path
):
    # A retiring worker used to close its idle kept-alive connections at once, failing the
    # request a caller was sending on one just then (3 in 491 over two restarts, measured; this
    # test failed 3 runs in 5 so).
    database_url = f"sqlite:///{tmp_path / 'kept-alive.db'}"
    settings = gateway_settings(
        database_url, upstream.api_url, limits={"backend": "redis", "redis_url": redis_url()}
    )
    upstream.set_behavior("ok", delay_ms=10)  # requests in flight as well as between them
    ledger = await Ledger.open(database_url)
    try:
        key, secret = await ledger.keys.create("kept-alive")
        gateway = GatewayProcess(settings, tmp_path, "kept-alive", log_level="info", args=["--workers", "2"])
        gateway.start()
        load = Load(gateway.base_url, secret, keep_alive=True, callers=8)
        running = asyncio.create_task(load.run())
        try:
            await until(lambda: "2 workers serving" in gateway.output(), within=60)
            await load.served(20)
            before = workers_of(gateway.pid)
            assert gateway.process is not None
            gateway.process.send_signal(signal.SIGHUP)
            await until(lambda: not (workers_of(gateway.pid) & before), within=60)
            await load.served(20)
            assert load.failed == []
            # SIGTERM under the same load: what is answered is answered whole; the rest fails to
            # connect (refused), or rarely, taken into the port's queue as it closed, is reset.
            assert await asyncio.to_thread(gateway.terminate, 60) == 0
        finally:
            load.stopped.set()
            await asyncio.wait_for(running, 60)
            gateway.kill()
        transport_errors = ("ConnectError(", "ReadError(", "WriteError(", "RemoteProtocolError(")
        assert all(failure.startswith(transport_errors) for failure in load.failed), load.failed
        async with ledger.engine.connect() as connection:
            query = select(generations.c.id).where(generations.c.key_id == key.id)
            recorded = set((await connection.execute(query)).scalars())
    finally:
        await ledger.close()
    assert set(load.ok) <= recorded, f"answered, not recorded: {set(load.ok) - recorded}"


def totals(exposition: str) -> tuple[float, float, float]:
    """Generations, their ledger writes and their cost in USD, over every label set."""
    found = {"genledger_generations_total": 0.0, "genledger_ledger_write_seconds_count": 0.0}
    cost = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in found:
                found[sample.name] += sample.value
            elif sample.name == "genledger_cost_usd_total":
                cost += sample.value
    return found["genledger_generations_total"], found["genledger_ledger_write_seconds_count"], cost


def generations_in(snapshot: Snapshot) -> float:
    return sum(
        sum(values.values())
        for (name, _), values in snapshot.counters.items()
        if name == "genledger_generations"
    )


def generations_by_worker(folder: Path) -> list[float]:
    """The generations in each serving worker's last snapshot (white box: which have served)."""
    counted = []
    for file in folder.glob("worker-*.json"):
        with contextlib.suppress(FileNotFoundError):  # retired meanwhile
            counted.append(generations_in(Snapshot.from_json(orjson.loads(file.read_bytes()))))
    return counted


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_any_worker_answers_metrics_for_all_workers_and_a_rolling_restart_keeps_their_counts(
    database_url: str, upstream: FakeOpenAIInThread, ledger: Ledger, tmp_path: Path
):
    settings = gateway_settings(
        database_url, upstream.api_url, limits={"backend": "redis", "redis_url": redis_url()}
    )
    _, secret = await ledger.keys.create("metrics-of-workers")
    _, admin = await ledger.keys.create("metrics-scraper", management=True)
    # TMPDIR: the parent makes the workers' metrics folder there, where the test can see it.
    gateway = GatewayProcess(
        settings,
        tmp_path,
        "metrics",
        log_level="info",
        args=["--workers", "2"],
        env={"TMPDIR": str(tmp_path)},
    ).start()
    costs: list[float] = []

    def log_tail() -> str:
        return "\n".join(gateway.output().splitlines()[-20:])

    def scrape() -> tuple[float, float, float]:
        # A connection of its own each time: the kernel hands it to either worker.
        page = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        assert page.status_code == 200, page.text
        return totals(page.text)

    async def ask(http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/chat/completions", json=BODY, headers={"Authorization": f"Bearer {secret}"}
        )
        assert response.status_code == 200, response.text
        costs.append(response.json()["usage"]["cost"])

    async def requests_until_both_workers_served(folder: Path) -> None:
        snapshots = SnapshotFolder(folder)
        limits = httpx.Limits(max_keepalive_connections=0)  # a new connection for each request
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30, limits=limits) as http:
            for _ in range(20):
                await asyncio.gather(*(ask(http) for _ in range(4)))
                # Every worker's snapshot has what it served within a snapshot interval.
                await until(lambda: generations_in(snapshots.read()) == len(costs), within=10, why=log_tail)
                if len([n for n in generations_by_worker(folder) if n > 0]) == 2:
                    return
        raise AssertionError(f"one worker served all {len(costs)} requests")

    try:
        await until(lambda: "2 workers serving" in gateway.output(), within=60, why=log_tail)
        (folder,) = metrics_folders(tmp_path)
        await requests_until_both_workers_served(folder)
        await asyncio.sleep(SNAPSHOT_INTERVAL_S)
        expected = (len(costs), len(costs), pytest.approx(sum(costs), rel=1e-9))
        assert [scrape() for _ in range(6)] == [expected] * 6

        # SIGHUP: while the workers are replaced, one by one, every scrape still counts all
        # that was served (the old workers' last snapshots), never less.
        before = workers_of(gateway.pid)
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGHUP)
        during = []
        while workers_of(gateway.pid) & before or len(workers_of(gateway.pid)) != 2:
            during.append(scrape())
            assert len(during) < 2000, log_tail()
            await asyncio.sleep(0.05)
        assert during and all(seen == expected for seen in during), during
        assert json_files(folder) == ["retired.json", "worker-3.json", "worker-4.json"]

        await requests_until_both_workers_served(folder)
        await asyncio.sleep(SNAPSHOT_INTERVAL_S)
        expected = (len(costs), len(costs), pytest.approx(sum(costs), rel=1e-9))
        assert [scrape() for _ in range(6)] == [expected] * 6
        assert gateway.terminate(within=60) == 0
        assert not folder.exists()
    finally:
        gateway.kill()


def metrics_folders(under: Path) -> list[Path]:
    return list(under.glob("genledger-metrics-*"))


def json_files(folder: Path) -> list[str]:
    return sorted(file.name for file in folder.glob("*.json"))


async def test_workers_whose_parent_is_killed_shut_down_instead_of_serving_on_as_orphans(
    upstream: FakeOpenAIInThread, tmp_path: Path
):
    database_url = f"sqlite:///{tmp_path / 'orphans.db'}"
    settings = gateway_settings(
        database_url, upstream.api_url, limits={"backend": "redis", "redis_url": redis_url()}
    )
    # TMPDIR: a parent killed with kill -9 leaves its metrics folder behind; not in /tmp.
    env = {"TMPDIR": str(tmp_path)}
    gateway = GatewayProcess(settings, tmp_path, "orphans", args=["--workers", "2"], env=env).start()
    orphans: set[int] = set()
    try:
        await until(lambda: len(workers_of(gateway.pid)) == 2, within=60)
        orphans = workers_of(gateway.pid)
        gateway.kill()
        await until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in orphans), within=30)
    finally:
        gateway.kill()
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("database_url", "backend", "asked", "expected"),
    [
        ("postgresql://db/x", "redis", None, 4),
        ("postgresql://db/x", "memory", None, 1),
        ("sqlite:///genledger.db", "redis", None, 1),
        ("sqlite:///genledger.db", "redis", 3, 3),
        ("postgresql://db/x", "redis", 2, 2),
        ("postgresql://db/x", "memory", 1, 1),
    ],
)
def test_worker_count_defaults_to_a_core_each_on_postgresql_with_shared_limits(
    database_url: str, backend: str, asked: int | None, expected: int
):
    settings = Settings(database_url=database_url, limits={"backend": backend})
    assert worker_count(settings, asked, cores=4) == expected


@pytest.mark.parametrize(
    ("database_url", "backend", "asked", "message"),
    [
        ("postgresql://db/x", "memory", 2, "shared rate limits"),
        ("sqlite:///genledger.db", "redis", 0, "at least 1"),
    ],
)
def test_worker_count_refuses_what_workers_could_not_share(
    database_url: str, backend: str, asked: int, message: str
):
    settings = Settings(database_url=database_url, limits={"backend": backend})
    with pytest.raises(WorkersError, match=message):
        worker_count(settings, asked, cores=4)


def test_workers_on_postgresql_share_one_generated_dashboard_secret():
    on_postgres = Settings(database_url="postgresql://db/x")
    shared = shared_settings(on_postgres)
    assert shared.dashboard_secret is not None
    assert len(shared.dashboard_secret.get_secret_value()) >= 32
    # A SQLite file keeps its secret beside it, and a configured one is kept as it is.
    on_sqlite = Settings(database_url="sqlite:///genledger.db")
    assert shared_settings(on_sqlite) is on_sqlite
    configured = Settings(database_url="postgresql://db/x", dashboard_secret="s" * 40)
    assert shared_settings(configured) is configured
