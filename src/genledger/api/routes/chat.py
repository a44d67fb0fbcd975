"""POST /api/v1/chat/completions."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from genledger.api.idempotency import idempotent
from genledger.api.openai_chat import completion_json, sse
from genledger.api.responses import json_response, services_of
from genledger.api.wire import parse_chat_request
from genledger.gateway.completions import RequestContext

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@idempotent
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
        return StreamingResponse(sse(relay), media_type="text/event-stream", headers=_STREAM_HEADERS)
    return json_response(completion_json(await services.completions.complete(key, chat, context)))
