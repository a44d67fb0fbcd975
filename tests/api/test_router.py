"""The router's table of plain paths answers every request as Starlette's own router would."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from genledger.api.router import Router


def answering(name: str):
    async def endpoint(request: Request) -> Response:
        route = request.scope["route"]
        return JSONResponse(
            {
                "by": name,
                "params": request.path_params,
                "route": getattr(route, "path", None),
                "url": str(request.url_for(name, **request.path_params)),
            }
        )

    return endpoint


def routes() -> list:
    inner = Starlette(routes=[Route("/page", answering("mounted"), name="mounted")])
    return [
        Route("/items/{name}", answering("item"), name="item"),
        Route(
            "/items/special", answering("special"), name="special"
        ),  # never reached: the one above takes it
        Route("/a", answering("get_a"), methods=["GET"], name="get_a"),
        Route("/a", answering("post_a"), methods=["POST"], name="post_a"),
        Route("/b", answering("any_b"), name="any_b"),
        Mount("/m", app=inner),
        Route("/m/page", answering("shadowed"), name="shadowed"),  # the mount above takes it
    ]


REQUESTS = [
    ("GET", "/items/special"),
    ("GET", "/items/other"),
    ("GET", "/a"),
    ("HEAD", "/a"),
    ("POST", "/a"),
    ("PUT", "/a"),
    ("GET", "/b"),
    ("DELETE", "/b"),
    ("GET", "/m/page"),
    ("GET", "/nowhere"),
    ("GET", "/a/"),
]


async def answers(app, root_path: str = "") -> list[tuple[int, str]]:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [
            ((r := await client.request(method, root_path + path)).status_code, r.text)
            for method, path in REQUESTS
        ]


@pytest.mark.parametrize("root_path", ["", "/prefix"])
async def test_the_table_answers_as_starlettes_router(root_path: str) -> None:
    ours = Starlette()
    ours.router = Router(routes())
    theirs = Starlette(routes=routes())
    got, expected = await answers(ours, root_path), await answers(theirs, root_path)
    assert got == expected
    assert [status for status, _ in got] == [200, 200, 200, 200, 200, 405, 200, 405, 200, 404, 307]
    assert '"by":"item"' in got[0][1] and '"by":"mounted"' in got[8][1]


def test_only_plain_routes_nothing_before_takes_are_in_the_table() -> None:
    router = Router(routes())
    assert sorted(router._plain) == [
        ("GET", "/a"), ("GET", "/b"), ("HEAD", "/a"), ("HEAD", "/b"), ("POST", "/a"),
    ]  # fmt: skip


async def test_a_405_names_every_method_the_routes_at_its_path_take() -> None:
    """Starlette names the first route's methods only; one route per method is how the
    gateway's table is written."""

    async def ok(request: Request) -> Response:
        return Response("ok")

    app = Starlette()
    app.router = Router(
        [
            Route("/things/{id}", ok, methods=["GET"]),
            Route("/things/{id}", ok, methods=["PATCH"]),
            Route("/things/{id}", ok, methods=["DELETE"]),
            Route("/plain", ok, methods=["POST"]),
            Route("/plain", ok, methods=["PUT"]),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        thing = await client.post("/things/1")
        plain = await client.get("/plain")
        served = await client.patch("/things/1")
    assert (thing.status_code, thing.headers["allow"]) == (405, "DELETE, GET, HEAD, PATCH")
    assert (plain.status_code, plain.headers["allow"]) == (405, "POST, PUT")
    assert served.status_code == 200
