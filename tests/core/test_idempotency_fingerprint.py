"""What makes two calls with one Idempotency-Key the same call: the same route and the same
JSON document, however a client serialized it."""

from __future__ import annotations

from genledger.core.idempotency import fingerprint

ROUTE = "/api/v1/chat/completions"


def test_the_same_document_written_otherwise_is_the_same_call():
    one = fingerprint(
        ROUTE, b'{"model": "a/b", "temperature": 1, "messages": [{"role": "user", "content": "hi"}]}'
    )
    assert one == fingerprint(
        ROUTE, b'{"messages":[{"content":"hi","role":"user"}],"temperature":1.0,"model":"a/b"}'
    )
    assert one == fingerprint(
        ROUTE, b'{"model":"a\\u002fb","temperature":1,"messages":[{"role":"user","content":"hi"}]}'
    )


def test_another_value_route_or_body_is_another_call():
    base = b'{"model": "a/b", "temperature": 1}'
    assert fingerprint(ROUTE, base) != fingerprint(ROUTE, b'{"model": "a/b", "temperature": 1.5}')
    assert fingerprint(ROUTE, base) != fingerprint("/api/v1/completions", base)
    assert (
        fingerprint(ROUTE, b"not json") == fingerprint(ROUTE, b"not json") != fingerprint(ROUTE, b"not json ")
    )
