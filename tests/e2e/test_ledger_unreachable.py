"""PostgreSQL out of reach under a running gateway (its connections cut, no new ones let in):
a short outage is ridden out, the record written once the database is back; a longer one is a
503 with ``Retry-After`` in the envelope, never a 500, and nothing recorded before is lost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from tests.e2e.conftest import MODEL, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key, run_with_ledger
from tests.services import _first_reachable_postgres, postgres_database

MESSAGES = [{"role": "user", "content": "hello"}]


async def _door(database_url: str, open_: bool) -> None:
    """Let connections into the test's database again, or shut them out and cut those open."""
    admin = await _first_reachable_postgres()
    assert admin is not None
    name = database_url.rpartition("/")[2]
    connection = await asyncpg.connect(admin, timeout=5)
    try:
        await connection.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(open_).lower()}')
        if not open_:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
    finally:
        await connection.close()


def door(database_url: str, *, open_: bool) -> None:
    asyncio.run(_door(database_url, open_))


@pytest.fixture
def served() -> Iterator[tuple[str, GatewayServer, str]]:
    with postgres_database() as url, FakeOpenAIInThread() as fake:
        secret = create_key(url, "k")  # no limit: nothing to reserve, the record is the first write
        with GatewayServer.build(**gateway_settings(url, fake.api_url)) as gateway:
            try:
                yield url, gateway, secret
            finally:
                door(url, open_=True)


def recorded(url: str, generation_id: str) -> bool:
    async def find(ledger: Any) -> bool:
        return await ledger.generations.lookup(generation_id) is not None

    return run_with_ledger(url, find)


def test_a_short_outage_is_ridden_out_and_the_record_written_once(served):
    url, gateway, secret = served
    client = openai.OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0, timeout=20)
    kept = client.chat.completions.create(model=MODEL, messages=MESSAGES)  # the key is now cached
    door(url, open_=False)
    reopen = threading.Timer(0.5, door, (url,), {"open_": True})
    reopen.start()
    try:
        answer = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    finally:
        reopen.join()
    assert recorded(url, answer.id) and recorded(url, kept.id)
    # The pool's connections were cut too: the first read to meet one is a 503 (no pre-ping,
    # which would cost a round trip per checkout), and the pool reconnects them all.
    statuses = []
    for _ in range(2):
        fetched = httpx.get(
            gateway.base_url + "/generation",
            params={"id": answer.id},
            headers={"Authorization": f"Bearer {secret}"},
        )
        statuses.append(fetched.status_code)
        if fetched.status_code == 200:
            break
    assert statuses in ([200], [503, 200]), statuses
    assert fetched.json()["data"]["id"] == answer.id


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_long_outage_is_a_503_to_retry_not_a_500(served, stream: bool):
    url, gateway, secret = served
    headers = {"Authorization": f"Bearer {secret}"}
    kept = httpx.post(
        gateway.base_url + "/chat/completions", json={"model": MODEL, "messages": MESSAGES}, headers=headers
    ).json()
    door(url, open_=False)
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, "stream": stream},
        headers=headers,
        timeout=20,
    )
    unavailable = {"code": 503, "message": "The ledger is unavailable; retry the request"}
    if stream:  # the stream had begun: its end says so
        assert response.status_code == 200
        assert f'"error":{{"code":503,"message":"{unavailable["message"]}"' in response.text
    else:
        assert response.status_code == 503, response.text
        assert response.json() == {"error": unavailable}
        assert response.headers["retry-after"] == "1"
    # Reads need the database too: a 503 as well, not a 500.
    read = httpx.get(gateway.base_url + "/generations", headers=headers)
    assert read.status_code == 503 and read.json() == {"error": unavailable}, read.text
    door(url, open_=True)
    assert recorded(url, kept["id"])
