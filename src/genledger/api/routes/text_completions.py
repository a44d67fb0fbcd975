"""POST /api/v1/completions: legacy prompt completions."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.event_stream import EventStreamResponse
from genledger.api.headers import header
from genledger.api.idempotency import idempotent
from genledger.api.prompt_wire import parse_prompt_request, text_completion_json, text_sse
from genledger.api.responses import json_response, request_context, services_of


@idempotent
async def text_completions(request: Request) -> Response:
    received_at = time.perf_counter()
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    prompt = parse_prompt_request(await request.body(), session_header=header(request, b"x-session-id"))
    context = request_context(request, received_at)
    if prompt.stream:
        relay = await services.completions.stream_prompt(key, prompt, context)
        return EventStreamResponse(text_sse(relay), outcome=relay.outcome)
    return json_response(
        text_completion_json(await services.completions.complete_prompt(key, prompt, context))
    )
