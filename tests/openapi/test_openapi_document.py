"""The OpenAPI document: every route has an operation, the document is valid OpenAPI 3.1,
and ``/generation``'s schema is the reference's table (names, types, nullability)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs  # schemathesis's JSON Schema validator
import pytest
from starlette.routing import Route

from genledger.api.app import ROUTES, create_app
from genledger.api.openapi import document
from genledger.api.operation import DocumentedRoute, route, undocumented
from genledger.api.operations import HEALTH
from genledger.config import load_settings
from genledger.core.generation import NOT_IN_CONTRACT
from tests.contract import GENERATION_KEYS, REQUIRED_KEYS
from tests.core.test_generation_definition import REFERENCE

DOCUMENT = document(ROUTES, "test")


def test_every_route_has_an_operation_with_its_method() -> None:
    assert undocumented(ROUTES) == []
    for r in ROUTES:
        assert isinstance(r, DocumentedRoute)
        assert r.methods is not None and r.method in r.methods
        assert r.path in DOCUMENT["paths"] and r.method.lower() in DOCUMENT["paths"][r.path]
    ids = [r.operation.operation_id for r in ROUTES if isinstance(r, DocumentedRoute)]
    assert len(ids) == len(set(ids))
    assert sum(len(p) for p in DOCUMENT["paths"].values()) == len(ROUTES)


def test_create_app_refuses_a_route_without_an_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handler() -> None: ...

    monkeypatch.setattr("genledger.api.app.ROUTES", [*ROUTES, Route("/secret", handler, methods=["GET"])])
    with pytest.raises(RuntimeError, match=r"\['GET', 'HEAD'\] /secret"):
        create_app(load_settings(None))
    assert undocumented([route("/health", handler, "GET", HEALTH)]) == []


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_the_document_is_openapi_3_1_with_every_reference_resolved() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    schemas = DOCUMENT["components"]["schemas"]
    for ref in _refs(DOCUMENT):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for schema in schemas.values():
        jsonschema_rs.meta.validate(schema)


def test_every_operation_documents_its_errors_as_the_envelope_with_the_headers_sent() -> None:
    for path, methods in DOCUMENT["paths"].items():
        for method, operation in methods.items():
            for status, reply in operation["responses"].items():
                if int(status) < 400:
                    continue
                schema = reply["content"]["application/json"]["schema"]["$ref"]
                expected = "AnthropicError" if path == "/api/v1/messages" else "ErrorEnvelope"
                assert schema.endswith("/" + expected), (method, path, status)
    chat = DOCUMENT["paths"]["/api/v1/chat/completions"]["post"]["responses"]
    assert set(chat["429"]["headers"]) == {
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-Request-Id",
    }
    assert set(chat["402"]["headers"]) == {"Retry-After", "X-Request-Id"}
    # Every answer carries its request's id, and every operation takes the caller's.
    for methods in DOCUMENT["paths"].values():
        for operation in methods.values():
            assert "X-Request-Id" in {p["name"] for p in operation["parameters"]}
            for reply in operation["responses"].values():
                assert reply["headers"]["X-Request-Id"]["required"] is True
            if "401" in operation["responses"]:  # failed authentications, per address
                assert "429" in operation["responses"]
    assert set(chat) >= {"200", "400", "401", "402", "429", "502", "524", "529"}
    assert "text/event-stream" in chat["200"]["content"]
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert DOCUMENT["paths"]["/api/v1/messages"]["post"]["security"] == [{"bearer": []}, {"x-api-key": []}]
    assert DOCUMENT["paths"]["/health"]["get"]["security"] == []
    assert DOCUMENT["paths"]["/api/v1/generation"]["get"]["security"] == [{"bearer": []}]


# --- /generation against shared/reference/generation-api.md

_TYPES = {"string": {"string"}, "number": {"number", "integer"}, "boolean": {"boolean"}, "array": {"array"}}


def reference_fields(text: str) -> dict[str, tuple[str, str]]:
    """``{key: (type, null?)}`` from the reference's tables of the generation object."""
    section = text[text.index("## The generation object") : text.index("\n## Errors")]
    fields: dict[str, tuple[str, str]] = {}
    for names, kind, null in re.findall(
        r"^\| ([a-z_, ]+) \| ([a-z]+) \| ([a-z ]+) \|", section, flags=re.MULTILINE
    ):
        if names == "key":
            continue
        for name in names.split(","):
            fields[name.strip()] = (kind, null.strip())
    return fields


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _types(schema: dict[str, Any]) -> set[str]:
    options = schema.get("anyOf", [schema])
    return {_resolve(o).get("type", "object") for o in options}


def generation_schema() -> dict[str, Any]:
    reply = DOCUMENT["paths"]["/api/v1/generation"]["get"]["responses"]["200"]
    envelope = _resolve(reply["content"]["application/json"]["schema"])
    assert envelope["required"] == ["data"]
    return _resolve(envelope["properties"]["data"])


# Keys the reference lets be null that genledger always knows (a stricter promise).
NEVER_NULL = frozenset({"api_type", "provider_responses"})


def mismatches(fields: dict[str, tuple[str, str]], schema: dict[str, Any]) -> list[str]:
    """Where the schema's properties differ from the reference's rows."""
    problems = []
    properties = schema["properties"]
    for name, (kind, null) in fields.items():
        if name not in properties or name not in schema["required"]:
            problems.append(f"{name}: not a required key")
            continue
        types = _types(properties[name])
        if not types - {"null"} <= _TYPES[kind]:
            problems.append(f"{name}: {sorted(types)} is not {kind}")
        nullable = "null" in types
        if null == "required" and (nullable or name not in REQUIRED_KEYS):
            problems.append(f"{name}: may be null, the reference requires it")
        if null != "required" and nullable == (name in NEVER_NULL):
            problems.append(f"{name}: nullable is {nullable}, the reference says {null}")
    return problems


def test_the_generation_schema_is_the_references_table() -> None:
    fields = reference_fields(REFERENCE.read_text())
    assert list(fields) == list(GENERATION_KEYS)  # the parser read every row
    schema = generation_schema()
    assert schema["additionalProperties"] is False
    # Every key of the reference, and only genledger's documented extensions beside them.
    assert set(schema["properties"]) - set(fields) == {"app_title", "metadata", "feedback"}
    assert set(schema["properties"]) == set(schema["required"])
    assert not NOT_IN_CONTRACT & set(schema["properties"])
    assert mismatches(fields, schema) == []
    attempt = _resolve(_resolve(schema["properties"]["provider_responses"])["items"])
    assert "status" in attempt["required"] and _types(attempt["properties"]["status"]) == {"integer"}


@pytest.mark.parametrize(
    ("row", "changed", "problem"),
    [
        ("| total_cost | number | required |", "| total_cost | string | required |", "is not string"),
        ("| upstream_id | string | nullable |", "| upstream_id | string | required |", "may be null"),
        ("| origin | string | required |", "| origin | string | nullable |", "nullable is False"),
        (
            "| router | string | nullable |",
            "| router | string | nullable |\n| rerouted | string | nullable |",
            "not a",
        ),
    ],
)
def test_a_changed_reference_row_is_a_mismatch(row: str, changed: str, problem: str) -> None:
    text = REFERENCE.read_text()
    assert row in text
    found = mismatches(reference_fields(text.replace(row, changed)), generation_schema())
    assert len(found) == 1 and problem in found[0], found
