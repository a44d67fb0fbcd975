"""POST /api/v1/embeddings."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.embeddings_wire import embeddings_json, parse_embedding_request
from genledger.api.headers import header
from genledger.api.idempotency import idempotent
from genledger.api.responses import json_response, request_context, services_of


@idempotent
async def embeddings(request: Request) -> Response:
    received_at = time.perf_counter()
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    parsed, encoding = parse_embedding_request(
        await request.body(), session_header=header(request, b"x-session-id")
    )
    answer = await services.completions.embed(key, parsed, request_context(request, received_at))
    return json_response(embeddings_json(answer, encoding))
