"""An internal fault is a 500 in the envelope, without internals, and loses nothing recorded."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.e2e.conftest import MODEL, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key


@contextmanager
def running(path: Path, **key: Any) -> Iterator[tuple[GatewayServer, str, ChatCompletion]]:
    """A gateway on a SQLite file at ``path``, a key, and one completion already recorded."""
    database = f"sqlite:///{path}"
    secret = create_key(database, "k", **key)
    with (
        FakeOpenAIInThread() as fake,
        GatewayServer.build(**gateway_settings(database, fake.api_url)) as gateway,
    ):
        client = openai.OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0)
        kept = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "keep me"}])
        yield gateway, secret, kept


def test_a_broken_ledger_is_a_clean_500_and_keeps_what_was_recorded(tmp_path):
    path = tmp_path / "ledger.db"
    with running(path, limit_pico=10**12) as (gateway, secret, kept):
        # Break the ledger under the running gateway: its generations can no longer be written.
        with sqlite3.connect(path) as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON generations "
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            )
        for stream in (False, True):
            response = httpx.post(
                gateway.base_url + "/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": stream},
                headers={"Authorization": f"Bearer {secret}"},
            )
            if stream:
                # The first bytes have gone out: the stream ends with a generic error chunk.
                assert response.status_code == 200
                assert '"error":{"code":500,"message":"Internal Server Error"}' in response.text
                assert "disk on fire" not in response.text
            else:
                assert response.status_code == 500
                assert response.headers["content-type"] == "application/json"
                assert response.json() == {"error": {"code": 500, "message": "Internal Server Error"}}
                assert "disk on fire" not in response.text and "Traceback" not in response.text
        with sqlite3.connect(path) as db:
            db.execute("DROP TRIGGER refuse")
            reserved, usage = db.execute("SELECT reserved_pico, usage_pico FROM api_keys").fetchone()
        # Nothing stays reserved for requests that were never recorded, and nothing was lost.
        assert reserved == 0
        fetched = httpx.get(
            gateway.base_url + "/generation",
            params={"id": kept.id},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert fetched.status_code == 200
        assert fetched.json()["data"]["usage"] * 10**12 == usage


def test_a_failing_read_is_a_typed_500_for_the_official_client(tmp_path):
    from openrouter import OpenRouter
    from openrouter import errors as or_errors
    from openrouter.utils import BackoffStrategy, RetryConfig

    path = tmp_path / "ledger.db"
    with running(path) as (gateway, secret, kept):
        with sqlite3.connect(path) as db:
            db.execute("ALTER TABLE generations RENAME TO generations_away")
        no_retries = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)
        with OpenRouter(api_key=secret, server_url=gateway.base_url, retry_config=no_retries) as sdk:
            with pytest.raises(or_errors.InternalServerResponseError) as caught:
                sdk.generations.get_generation(id=kept.id)
            assert caught.value.data.error.code == 500
            assert "generations" not in caught.value.data.error.message
            with sqlite3.connect(path) as db:
                db.execute("ALTER TABLE generations_away RENAME TO generations")
            assert sdk.generations.get_generation(id=kept.id).data.id == kept.id


def test_a_500_leaves_the_keep_alive_connection_open_for_the_next_request(tmp_path):
    path = tmp_path / "ledger.db"
    with running(path) as (gateway, secret, kept):
        with sqlite3.connect(path) as db:
            db.execute("ALTER TABLE generations RENAME TO generations_away")
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=gateway.base_url, headers=headers) as client:
            failed = client.get("/generation", params={"id": kept.id})
            assert failed.status_code == 500
            assert failed.json() == {"error": {"code": 500, "message": "Internal Server Error"}}
            assert failed.headers.get("connection") != "close"
            socket_of_the_500 = failed.extensions["network_stream"].get_extra_info("socket")
            local_address = socket_of_the_500.getsockname()
            with sqlite3.connect(path) as db:
                db.execute("ALTER TABLE generations_away RENAME TO generations")
            served = client.get("/generation", params={"id": kept.id})
            assert served.status_code == 200
            assert served.json()["data"]["id"] == kept.id
            # The same socket carried both answers: the 500 did not cost the caller its connection.
            assert served.extensions["network_stream"] is failed.extensions["network_stream"]
            assert served.extensions["network_stream"].get_extra_info("socket").getsockname() == local_address
