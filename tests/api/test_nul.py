"""A NUL character (U+0000) in a request is a 400 naming where, before anything stores it."""

from __future__ import annotations

import httpx
import orjson
import pytest

from genledger.api.app import create_app
from genledger.api.inbound import load_object
from genledger.config import load_settings
from genledger.errors import BadRequest


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"user": "a\x00"}, "user"),
        (
            {"messages": [{"role": "user", "content": ["ok", {"text": "\x00"}]}]},
            "messages[0].content[1].text",
        ),
        ({"metadata": {"k\x00": "v"}}, "metadata.k\x00"),
    ],
)
def test_a_nul_in_a_body_is_a_400_naming_where(body: dict[str, object], param: str) -> None:
    with pytest.raises(BadRequest) as raised:
        load_object(orjson.dumps(body))
    assert raised.value.metadata == {"param": param}


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul() -> None:
    raw = b'{"user": "\\\\u0000"}'
    assert load_object(raw) == {"user": "\\u0000"}
    assert load_object(b"", empty_is_object=True) == {}


@pytest.mark.parametrize("url", ["/api/v1/generation?id=a%00", "/api/v1/keys/%00", "/health?x=%00"])
async def test_a_nul_in_the_url_is_a_400_envelope(url: str) -> None:
    app = create_app(load_settings(None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        response = await client.get(url)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400 and "NUL" in response.json()["error"]["message"]
