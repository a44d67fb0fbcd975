"""The edge, in process: a 500 envelope before the response starts, a re-raise after; the
router's own errors in the envelope; the request's id on every answer."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import httpx
import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genledger.api.edge import Edge
from genledger.api.errors import on_gateway_error, on_http_exception
from genledger.api.request_log import new_request_id
from genledger.api.router import App
from genledger.errors import GatewayError
from genledger.metrics import Metrics


class Boom(Exception):
    pass


async def fails(request: Request) -> Response:
    raise Boom("disk on fire")


async def works(request: Request) -> Response:
    return Response("fine")


HANDLERS = {GatewayError: on_gateway_error, HTTPException: on_http_exception}


def edge(app: ASGIApp) -> Edge:
    return Edge(app, handlers=HANDLERS, max_body_bytes=1000)


def app_with_metrics() -> tuple[App, Metrics]:
    app = App([Route("/fails", fails), Route("/works", works, methods=["GET"])], edge=edge)
    metrics = Metrics()
    app.services = SimpleNamespace(metrics=metrics)  # type: ignore[assignment]
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
        await edge(half_a_stream)(scope, no_body, record)
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
        await edge(lifespan_app)({"type": "lifespan"}, never, drop)
    assert seen == ["lifespan"]


async def test_the_routers_own_errors_are_envelopes_with_the_request_id():
    app, metrics = app_with_metrics()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        missing = await client.get("/nowhere", headers={"x-request-id": "mine-1"})
        wrong_method = await client.post("/works")
        fine = await client.get("/works")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": 404, "message": "Not found: GET /nowhere"}}
    assert missing.headers["x-request-id"] == "mine-1"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["message"] == "Method POST not allowed on /works"
    assert fine.headers["x-request-id"].startswith("req-")
    assert errors_counted(metrics, "404") == 1 and errors_counted(metrics, "405") == 1


def test_new_request_ids_are_96_random_bits_in_hex():
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"req-[0-9a-f]{24}", request_id) for request_id in ids)
    # Every position varies: no counter or constant prefix hides among the bits.
    assert all(len({request_id[i] for request_id in ids}) == 16 for i in range(4, 28))


async def test_the_edge_reads_each_header_once_and_keeps_the_first_of_a_name_sent_twice():
    from genledger.api.headers import header

    seen: dict[str, str | None] = {}

    async def reads(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        seen["title"] = header(request, b"x-title")
        seen["id"] = header(request, b"x-request-id")
        await Response("ok")(scope, receive, send)

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    raw = [
        (b"x-request-id", b"first-id"),
        (b"x-title", b"first"),
        (b"x-request-id", b"second-id"),
        (b"x-title", b"second"),
    ]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": raw, "query_string": b""}
    await edge(reads)(scope, receive, send)
    assert seen == {"title": "first", "id": "first-id"}
    start = sent[0]
    assert start["status"] == 200
    assert (b"x-request-id", b"first-id") in start["headers"]
