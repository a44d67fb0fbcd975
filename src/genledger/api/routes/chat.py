"""POST /api/v1/chat/completions."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.event_stream import EventStreamResponse
from genledger.api.headers import header
from genledger.api.idempotency import idempotent
from genledger.api.openai_chat import completion_json, sse
from genledger.api.responses import json_response, request_context, services_of
from genledger.api.wire import parse_chat_request


@idempotent
async def chat_completions(request: Request) -> Response:
    received_at = time.perf_counter()
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    chat = parse_chat_request(await request.body(), session_header=header(request, b"x-session-id"))
    context = request_context(request, received_at)
    if chat.stream:
        relay = await services.completions.stream(key, chat, context)
        return EventStreamResponse(sse(relay), outcome=relay.outcome)
    return json_response(completion_json(await services.completions.complete(key, chat, context)))
