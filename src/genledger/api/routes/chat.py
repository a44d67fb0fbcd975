"""POST /api/v1/chat/completions."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from genledger.api.inbound import caller_context
from genledger.api.openai_chat import completion_json, sse
from genledger.api.responses import STREAM_HEADERS, json_response, services_of
from genledger.api.wire import parse_chat_request


async def chat_completions(request: Request) -> Response:
    received_at = time.perf_counter()
    services = services_of(request)
    key = await services.auth.authenticate(request.headers.get("authorization"))
    chat = parse_chat_request(await request.body(), session_header=request.headers.get("x-session-id"))
    context = caller_context(request, received_at)
    if chat.stream:
        relay = await services.completions.stream(key, chat, context)
        return StreamingResponse(sse(relay), media_type="text/event-stream", headers=STREAM_HEADERS)
    return json_response(completion_json(await services.completions.complete(key, chat, context)))
