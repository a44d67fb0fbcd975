"""POST /api/v1/completions: legacy prompt completions."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from genledger.api.prompt_wire import parse_prompt_request, text_completion_json, text_sse
from genledger.api.responses import json_response, request_context, services_of

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def text_completions(request: Request) -> Response:
    received_at = time.perf_counter()
    services = services_of(request)
    key = await services.auth.authenticate(request.headers.get("authorization"))
    prompt = parse_prompt_request(await request.body(), session_header=request.headers.get("x-session-id"))
    context = request_context(request, received_at)
    if prompt.stream:
        relay = await services.completions.stream_prompt(key, prompt, context)
        return StreamingResponse(text_sse(relay), media_type="text/event-stream", headers=_STREAM_HEADERS)
    return json_response(
        text_completion_json(await services.completions.complete_prompt(key, prompt, context))
    )
