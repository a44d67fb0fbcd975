"""GET /api/v1/generation?id=..., its content and feedback, GET /api/v1/generations (the list)
and its export."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from genledger.api.content_wire import content_json, parse_feedback
from genledger.api.export_wire import MEDIA_TYPES, export_filename, render
from genledger.api.generation_wire import feedback_json, generation_json, listed_items
from genledger.api.headers import header
from genledger.api.list_wire import MAX_PAGE, encode_cursor, parse_export_query, parse_list_query
from genledger.api.responses import json_response, services_of
from genledger.api.wire import parse_generation_id
from genledger.errors import NotFound


async def get_generation(request: Request) -> Response:
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    generation_id = parse_generation_id(request.query_params.get("id"))
    generation = await services.generations.get(generation_id, key.id)
    if generation is None:
        # Another key's generation is answered exactly like a missing one.
        raise NotFound(f"Generation {generation_id} not found", metadata={"id": generation_id})
    feedback = await services.content.feedback_for([generation.id])
    return json_response(
        {"data": {**generation_json(generation), "feedback": feedback_json(feedback.get(generation.id))}}
    )


async def list_generations(request: Request) -> Response:
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    query = parse_list_query(request.query_params, [name for name, _ in request.query_params.multi_items()])
    page = await services.reads.list(
        key, query.where, limit=query.limit, after=query.after, api_key_hash=query.api_key_hash
    )
    notes = await services.reads.notes([generation.id for generation in page.items])
    return json_response(
        {
            "data": listed_items(page.items, notes),
            "next_cursor": encode_cursor(page.next) if page.next is not None else None,
        }
    )


async def get_generation_content(request: Request) -> Response:
    """The stored prompt and answer; a 404 that says why when there is none."""
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    generation_id = parse_generation_id(request.query_params.get("id"))
    return json_response(content_json(await services.content.get(key, generation_id)))


async def submit_feedback(request: Request) -> Response:
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    generation_id, category, comment = parse_feedback(await request.body())
    await services.content.submit_feedback(key, generation_id, category, comment)
    return json_response({"data": {"success": True}})


EXPORT_BATCH = MAX_PAGE


async def export_generations(request: Request) -> Response:
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    query = parse_export_query(request.query_params, [name for name, _ in request.query_params.multi_items()])
    batches = await services.reads.export(
        key, query.where, batch=EXPORT_BATCH, api_key_hash=query.api_key_hash
    )
    filename = export_filename(query.format)
    return StreamingResponse(
        render(batches, query.format, services.reads.notes),
        media_type=MEDIA_TYPES[query.format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
