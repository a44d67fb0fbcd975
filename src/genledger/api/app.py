"""The ASGI application: routes mapped to handlers, state built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from genledger.api.dashboard import dashboard_mount, environment
from genledger.api.errors import on_gateway_error, on_http_exception
from genledger.api.routes.activity import get_activity
from genledger.api.routes.chat import chat_completions
from genledger.api.routes.embeddings import embeddings
from genledger.api.routes.generations import (
    export_generations,
    get_generation,
    get_generation_content,
    list_generations,
    submit_feedback,
)
from genledger.api.routes.keys import (
    create_key,
    credits,
    current_key,
    delete_key,
    get_key,
    list_keys,
    update_key,
)
from genledger.api.routes.messages import create_message
from genledger.api.routes.models import (
    count_models,
    get_model,
    list_embedding_models,
    list_endpoints,
    list_models,
    list_models_for_user,
    list_providers,
)
from genledger.api.routes.ops import health, metrics
from genledger.api.routes.responses import create_response
from genledger.api.routes.statements import list_statements
from genledger.api.routes.text_completions import text_completions
from genledger.api.stack import auth_failure_counter, middleware_stack
from genledger.config import Settings
from genledger.errors import GatewayError
from genledger.gateway.services import Services
from genledger.logs import stderr_writer

ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/api/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/api/v1/responses", create_response, methods=["POST"]),
    Route("/api/v1/messages", create_message, methods=["POST"]),
    Route("/api/v1/generation", get_generation, methods=["GET"]),
    Route("/api/v1/generation/content", get_generation_content, methods=["GET"]),
    Route("/api/v1/generation/feedback", submit_feedback, methods=["POST"]),
    Route("/api/v1/generations", list_generations, methods=["GET"]),
    # Before any /api/v1/generations/{...} route, which would otherwise take "export".
    Route("/api/v1/generations/export", export_generations, methods=["GET"]),
    Route("/api/v1/activity", get_activity, methods=["GET"]),
    Route("/api/v1/models", list_models, methods=["GET"]),
    Route("/api/v1/embeddings", embeddings, methods=["POST"]),
    Route("/api/v1/embeddings/models", list_embedding_models, methods=["GET"]),
    Route("/api/v1/completions", text_completions, methods=["POST"]),
    Route("/api/v1/models/count", count_models, methods=["GET"]),
    Route("/api/v1/models/{author}/{slug}/endpoints", list_endpoints, methods=["GET"]),
    Route("/api/v1/model/{author}/{slug}", get_model, methods=["GET"]),
    Route("/api/v1/providers", list_providers, methods=["GET"]),
    Route("/api/v1/models/user", list_models_for_user, methods=["GET"]),
    Route("/api/v1/key", current_key, methods=["GET"]),
    Route("/api/v1/credits", credits, methods=["GET"]),
    Route("/api/v1/keys", list_keys, methods=["GET"]),
    Route("/api/v1/keys", create_key, methods=["POST"]),
    Route("/api/v1/keys/{hash}", get_key, methods=["GET"]),
    Route("/api/v1/keys/{hash}", update_key, methods=["PATCH"]),
    Route("/api/v1/keys/{hash}", delete_key, methods=["DELETE"]),
    Route("/api/v1/statements", list_statements, methods=["GET"]),
]


def create_app(
    settings: Settings,
    services: Services | None = None,
    *,
    log_write: Callable[[bytes], object] = stderr_writer,
) -> Starlette:
    """The gateway app. Without ``services``, they are built from ``settings`` at start-up.

    Request log lines (when ``settings.logging`` has them on) go to ``log_write``: stderr.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = services is None
        running: Services = services if services is not None else await Services.start(settings)
        app.state.services = running
        running.start_background()
        try:
            yield
        finally:
            if auth_failures is not None:
                await auth_failures.aclose()
            if owned:
                await running.aclose()
            else:
                await running.leases.stop()

    auth_failures = auth_failure_counter(settings.limits)
    app = Starlette(
        routes=[*ROUTES, dashboard_mount()],
        middleware=middleware_stack(settings, log_write=log_write, auth_failures=auth_failures),
        exception_handlers={GatewayError: on_gateway_error, HTTPException: on_http_exception},
        lifespan=lifespan,
    )
    app.state.dashboard_templates = environment()
    app.state.auth_failures = auth_failures  # counted where a 401 is rendered
    if services is not None:
        app.state.services = services  # usable without a lifespan (httpx's ASGITransport)
    return app
