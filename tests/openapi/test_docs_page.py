"""``/docs`` and ``/api/v1/openapi.json`` as served: the page, its local assets, its headers."""

from __future__ import annotations

import re

import httpx
import orjson

from genledger.api.app import create_app
from genledger.config import load_settings


def _client() -> httpx.AsyncClient:
    app = create_app(load_settings(None))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


async def test_the_document_is_served_without_a_key() -> None:
    async with _client() as client:
        response = await client.get("/api/v1/openapi.json")
        again = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = orjson.loads(response.content)
    assert document["openapi"] == "3.1.0" and "/api/v1/generation" in document["paths"]
    assert again.content == response.content


async def test_the_docs_page_loads_its_assets_from_the_gateway_under_a_strict_policy() -> None:
    async with _client() as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe-eval" not in policy
        assert "default-src 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        html = page.text
        assert '<redoc spec-url="/api/v1/openapi.json">' in html
        # No inline script, and nothing from another origin.
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/docs/static/redoc.standalone.js">']
        assert "http://" not in html and "https://" not in html and "//cdn" not in html
        assets = re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', html)
        assert sorted(assets) == ["/docs/static/docs.css", "/docs/static/redoc.standalone.js"]
        for asset, kind in (
            ("/docs/static/redoc.standalone.js", "javascript"),
            ("/docs/static/docs.css", "text/css"),
            ("/docs/static/redoc.LICENSE.txt", "text/"),
        ):
            response = await client.get(asset)
            assert response.status_code == 200, asset
            assert kind in response.headers["content-type"], (asset, response.headers["content-type"])
        script = await client.get("/docs/static/redoc.standalone.js")
        assert b'Version: "2.5.4"' in script.content[:2000] or b"2.5.4" in script.content
        missing = await client.get("/docs/static/nothing.js")
        assert missing.status_code == 404
