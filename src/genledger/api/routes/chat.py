"""POST /api/v1/chat/completions."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.event_stream import EventStreamResponse
from genledger.api.openai_chat import completion_json, sse
from genledger.api.responses import json_response, services_of
from genledger.api.wire import parse_chat_request
from genledger.gateway.completions import RequestContext


async def chat_completions(request: Request) -> Response:
    received_at = time.perf_counter()
    services = services_of(request)
    key = await services.auth.authenticate(request.headers.get("authorization"))
    headers = request.headers
    chat = parse_chat_request(await request.body(), session_header=headers.get("x-session-id"))
    context = RequestContext(
        received_at=received_at,
        http_referer=headers.get("http-referer") or headers.get("referer"),
        user_agent=headers.get("user-agent"),
        app_title=headers.get("x-title") or headers.get("x-openrouter-title"),
        request_id=headers.get("x-request-id"),
    )
    if chat.stream:
        relay = await services.completions.stream(key, chat, context)
        return EventStreamResponse(sse(relay))
    return json_response(completion_json(await services.completions.complete(key, chat, context)))
