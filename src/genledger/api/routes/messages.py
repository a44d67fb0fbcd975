"""POST /api/v1/messages: Anthropic's Messages API, served by any provider.

Errors on this route are rendered in Anthropic's shape (by the edge's handlers, for every path
under the route: ``api/errors.py``), and the key may come as Anthropic's ``x-api-key`` header
as well as a bearer ``Authorization``.
"""

from __future__ import annotations

import functools
import time

from starlette.requests import Request
from starlette.responses import Response

from genledger.api.anthropic_messages import message_json, sse
from genledger.api.event_stream import EventStreamResponse
from genledger.api.headers import header
from genledger.api.idempotency import idempotent
from genledger.api.messages_wire import parse_messages_request
from genledger.api.responses import json_response, request_context, services_of


def anthropic_credential(request: Request) -> str | None:
    """``Authorization``, or Anthropic's ``x-api-key`` (as a bearer)."""
    authorization = header(request, b"authorization")
    if authorization is None and (api_key := header(request, b"x-api-key")):
        authorization = f"Bearer {api_key}"
    return authorization


@functools.partial(idempotent, credential=anthropic_credential)
async def create_message(request: Request) -> Response:
    received_at = time.perf_counter()
    services = services_of(request)
    key = await services.auth.authenticate(anthropic_credential(request))
    chat = parse_messages_request(await request.body(), session_header=header(request, b"x-session-id"))
    context = request_context(request, received_at)
    if chat.stream:
        relay = await services.completions.stream(key, chat, context)
        return EventStreamResponse(sse(relay), outcome=relay.outcome)
    return json_response(message_json(await services.completions.complete(key, chat, context)))
