"""Error responses and malformed bodies map to the classes of ``genledger.client.errors``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from client_kit import GENERATION_ID, Harness, Reply, error_body, fail, ok, scripted

from genledger.client import errors
from genledger.client.errors import (
    STATUS_ERRORS,
    APIError,
    APIStatusError,
    GenledgerError,
    ResponseValidationError,
)

GET = "generations.get_generation"

# The status table of shared/reference/generation-api.md, copied here on purpose: if either
# side changes, this test says so.
CONTRACT_TABLE = {
    400: "BadRequestResponseError",
    401: "UnauthorizedResponseError",
    402: "PaymentRequiredResponseError",
    403: "ForbiddenResponseError",
    404: "NotFoundResponseError",
    429: "TooManyRequestsResponseError",
    500: "InternalServerResponseError",
    502: "BadGatewayResponseError",
    524: "EdgeNetworkTimeoutResponseError",
    529: "ProviderOverloadedResponseError",
}


def test_the_status_table_is_the_contract_table() -> None:
    assert {status: cls.__name__ for status, cls in STATUS_ERRORS.items()} == CONTRACT_TABLE
    for name in CONTRACT_TABLE.values():
        assert getattr(errors, name) in STATUS_ERRORS.values()
    with pytest.raises(TypeError):
        STATUS_ERRORS[418] = APIError  # type: ignore[index]


def test_hierarchy() -> None:
    for cls in (*STATUS_ERRORS.values(), APIError):
        assert issubclass(cls, APIStatusError)
    assert issubclass(errors.APITimeoutError, errors.APIConnectionError)
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type):
            assert issubclass(value, GenledgerError), name
            assert value.__doc__, name
            assert value.__name__ in errors.__doc__, f"{name} missing from the tree in the docstring"


@pytest.mark.parametrize(("status", "class_name"), sorted(CONTRACT_TABLE.items()))
async def test_every_contract_status_raises_its_class(harness: Harness, status: int, class_name: str) -> None:
    metadata = {"provider_name": "OpenAI", "raw": {"x": 1}}
    body = {**error_body(status, "it went wrong", metadata=metadata), "user_id": "user-7"}
    client = harness.client(
        scripted(Reply(status, json=body, headers={"X-Request-ID": "srv-req-1", "X-Extra": "yes"})),
        max_retries=0,
    )

    with pytest.raises(APIStatusError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)

    error = caught.value
    assert type(error) is getattr(errors, class_name)
    assert error.status_code == status
    assert error.error is not None
    assert (error.error.code, error.error.message, error.error.metadata) == (
        status,
        "it went wrong",
        metadata,
    )
    assert error.user_id == "user-7"
    assert error.headers["x-extra"] == "yes"
    assert isinstance(error.response, httpx.Response) and error.response.status_code == status
    assert error.body == body
    assert error.request_id == "srv-req-1"
    assert str(error) == f"HTTP {status}: it went wrong"


@pytest.mark.parametrize("status", [405, 409, 413, 418, 422, 501, 503, 599])
async def test_other_statuses_with_an_envelope_raise_api_error(harness: Harness, status: int) -> None:
    client = harness.client(scripted(fail(status, "other")), max_retries=0)
    with pytest.raises(APIStatusError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    assert type(caught.value) is APIError
    assert caught.value.status_code == status
    assert caught.value.error is not None and caught.value.error.message == "other"


async def test_request_id_falls_back_to_the_one_sent(harness: Harness) -> None:
    client = harness.client(scripted(fail(404)))
    with pytest.raises(errors.NotFoundResponseError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    assert caught.value.request_id == harness.requests[0].headers["X-Request-ID"]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, content=b"<html>Not Found</html>", headers={"Content-Type": "text/html"}),
        Reply(401, content=b"Unauthorized", headers={"Content-Type": "text/plain"}),
        Reply(429, content=b"", headers={}),
        Reply(404, content=b"{not json", headers={"Content-Type": "application/json"}),
        Reply(404, json={"detail": "Not Found"}),
        Reply(400, json={"error": "bad"}),
        Reply(402, json={"error": {"code": 402}}),
        Reply(403, json=["error"]),
    ],
    ids=[
        "html-404",
        "text-401",
        "empty-429",
        "broken-json",
        "fastapi-style",
        "string-error",
        "no-message",
        "list",
    ],
)
async def test_an_error_body_that_is_not_the_envelope_raises_api_error(
    harness: Harness, reply: Reply
) -> None:
    client = harness.client(scripted(reply), max_retries=0)
    with pytest.raises(APIStatusError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    error = caught.value
    assert type(error) is APIError
    assert error.status_code == reply.status
    assert error.error is None
    message = str(error)
    assert f"HTTP {reply.status}" in message
    content_type = reply.headers.get("Content-Type", "application/json" if reply.json is not None else "")
    assert repr(content_type or "none") in message


async def test_the_quoted_body_is_bounded(harness: Harness) -> None:
    page = b"<html>" + b"x" * 10_000 + b"</html>"
    client = harness.client(
        scripted(Reply(502, content=page, headers={"Content-Type": "text/html"})), max_retries=0
    )
    with pytest.raises(APIError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    message = str(caught.value)
    assert "<html>xxx" in message
    assert len(message) < 700
    assert "(10013 chars)" in message
    assert caught.value.body == page.decode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"total_cost": "a lot"}, "data.total_cost"),
        ({"is_byok": "maybe"}, "data.is_byok"),
        ({"tokens_prompt": 1.5}, "data.tokens_prompt"),
        ({"id": None}, "data.id"),
        ({"provider_responses": [{"provider_name": "OpenAI"}]}, "data.provider_responses.0.status"),
        ({"provider_responses": "none"}, "data.provider_responses"),
    ],
)
async def test_a_malformed_success_body_names_the_wrong_field(
    harness: Harness, generation_data: dict[str, Any], data: dict[str, Any], field: str
) -> None:
    client = harness.client(scripted(ok({**generation_data, **data})))
    with pytest.raises(ResponseValidationError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert "Generation" in str(caught.value)
    assert caught.value.response.status_code == 200
    assert len(harness.requests) == 1  # never retried


async def test_a_missing_key_is_a_validation_error(harness: Harness, generation_data: dict[str, Any]) -> None:
    del generation_data["data_region"]
    del generation_data["model"]
    client = harness.client(scripted(ok(generation_data)))
    with pytest.raises(ResponseValidationError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    assert {e["loc"] for e in caught.value.errors} == {"data.data_region", "data.model"}
    assert "Field required" in str(caught.value)


async def test_many_wrong_fields_are_summarised(harness: Harness) -> None:
    client = harness.client(scripted(ok({"unrelated": True})))
    with pytest.raises(ResponseValidationError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    assert len(caught.value.errors) > 5
    assert "more)" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "field"),
    [
        (Reply(200, content=b"<html>ok</html>", headers={"Content-Type": "text/html"}), None),
        (Reply(200, json={"generation": {}}), "data"),
        (Reply(200, json=[1, 2]), "data"),
        (Reply(200, json={"data": None}), "data"),
        (Reply(200, json={"data": "text"}), "data"),
    ],
    ids=["not-json", "no-data", "list", "null-data", "string-data"],
)
async def test_a_success_body_of_the_wrong_shape_is_a_validation_error(
    harness: Harness, reply: Reply, field: str | None
) -> None:
    client = harness.client(scripted(reply))
    with pytest.raises(ResponseValidationError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    assert caught.value.field == field
    assert "GET /api/v1/generation" in str(caught.value)
