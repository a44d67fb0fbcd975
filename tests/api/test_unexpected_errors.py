"""UnexpectedErrors, in process: a 500 envelope before the response starts, a re-raise after."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from genledger.api.middleware import UnexpectedErrors
from genledger.metrics import Metrics


class Boom(Exception):
    pass


async def fails(request: Request) -> Response:
    raise Boom("disk on fire")


async def works(request: Request) -> Response:
    return Response("fine")


def app_with_metrics() -> tuple[Starlette, Metrics]:
    app = Starlette(
        routes=[Route("/fails", fails), Route("/works", works)], middleware=[Middleware(UnexpectedErrors)]
    )
    metrics = Metrics()
    app.state.services = SimpleNamespace(metrics=metrics)
    return app, metrics


def errors_counted(metrics: Metrics, status: str) -> float | None:
    return metrics.registry.get_sample_value("genledger_errors_total", {"status": status})


async def test_an_exception_before_the_response_is_one_logged_500_envelope_and_is_not_reraised(caplog):
    app, metrics = app_with_metrics()
    # The transport re-raises whatever escapes the app: a 500 here means nothing escaped.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    caplog.set_level(logging.ERROR)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/fails")
        after = await client.get("/works")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {"code": 500, "message": "Internal Server Error"}}
    assert "disk on fire" not in response.text
    assert after.status_code == 200 and after.text == "fine"
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert logged[0].name == "genledger.api"
    assert logged[0].exc_info is not None and isinstance(logged[0].exc_info[1], Boom)
    assert errors_counted(metrics, "500") == 1


async def test_an_exception_after_the_response_started_is_reraised_and_nothing_more_is_sent(caplog):
    app, metrics = app_with_metrics()

    async def half_a_stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        raise Boom("mid-stream")

    sent: list[Message] = []

    async def record(message: Message) -> None:
        # As every ASGI server does (uvicorn raises RuntimeError): one start per response.
        if message["type"] == "http.response.start" and any(m["type"] == message["type"] for m in sent):
            raise RuntimeError("Unexpected ASGI message 'http.response.start' sent, after response started")
        sent.append(message)

    async def no_body() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "app": app}
    caplog.set_level(logging.ERROR)
    with pytest.raises(Boom, match="mid-stream"):
        await UnexpectedErrors(half_a_stream)(scope, no_body, record)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200
    # The server logs what escapes it; logging here as well would report it twice.
    assert caplog.records == []
    assert errors_counted(metrics, "500") is None


async def test_other_scopes_pass_through_untouched():
    seen: list[str] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        raise Boom("not ours to answer")

    async def never() -> Message:
        raise AssertionError("not called")

    async def drop(message: Message) -> None:
        raise AssertionError("not called")

    with pytest.raises(Boom):
        await UnexpectedErrors(lifespan_app)({"type": "lifespan"}, never, drop)
    assert seen == ["lifespan"]
