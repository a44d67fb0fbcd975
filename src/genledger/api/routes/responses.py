"""POST /api/v1/responses: OpenAI's Responses API, served by any chat provider."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.event_stream import EventStreamResponse
from genledger.api.headers import header
from genledger.api.idempotency import idempotent
from genledger.api.openai_responses import response_json, sse
from genledger.api.responses import json_response, request_context, services_of
from genledger.api.responses_wire import parse_responses_request


@idempotent
async def create_response(request: Request) -> Response:
    received_at = time.perf_counter()
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    parsed = parse_responses_request(await request.body(), session_header=header(request, b"x-session-id"))
    context = request_context(request, received_at)
    if parsed.chat.stream:
        relay = await services.completions.stream(key, parsed.chat, context)
        return EventStreamResponse(sse(parsed, relay), outcome=relay.outcome)
    return json_response(
        response_json(parsed, await services.completions.complete(key, parsed.chat, context))
    )
