"""The ASGI application: routes mapped to handlers, state built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from genledger.api import operations as ops
from genledger.api.dashboard import dashboard_mount
from genledger.api.docs import STATIC, STATIC_PREFIX
from genledger.api.openapi import OPENAPI_PATH
from genledger.api.operation import route, undocumented
from genledger.api.router import App
from genledger.api.routes.activity import get_activity
from genledger.api.routes.chat import chat_completions
from genledger.api.routes.docs import docs_page, openapi_json
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
from genledger.api.stack import auth_failure_counter, edge
from genledger.api.worker_metrics import WorkerMetrics
from genledger.config import Settings
from genledger.gateway.services import Services
from genledger.logs import stderr_writer

ROUTES = [
    route("/health", health, "GET", ops.HEALTH),
    route("/metrics", metrics, "GET", ops.METRICS),
    route(OPENAPI_PATH, openapi_json, "GET", ops.OPENAPI),
    route("/docs", docs_page, "GET", ops.DOCS),
    route("/api/v1/chat/completions", chat_completions, "POST", ops.CHAT),
    route("/api/v1/responses", create_response, "POST", ops.RESPONSES),
    route("/api/v1/messages", create_message, "POST", ops.MESSAGES),
    route("/api/v1/generation", get_generation, "GET", ops.GET_GENERATION),
    route("/api/v1/generation/content", get_generation_content, "GET", ops.GET_CONTENT),
    route("/api/v1/generation/feedback", submit_feedback, "POST", ops.FEEDBACK),
    route("/api/v1/generations", list_generations, "GET", ops.LIST_GENERATIONS),
    # Before any /api/v1/generations/{...} route, which would otherwise take "export".
    route("/api/v1/generations/export", export_generations, "GET", ops.EXPORT_GENERATIONS),
    route("/api/v1/activity", get_activity, "GET", ops.ACTIVITY),
    route("/api/v1/models", list_models, "GET", ops.LIST_MODELS),
    route("/api/v1/embeddings", embeddings, "POST", ops.EMBEDDINGS),
    route("/api/v1/embeddings/models", list_embedding_models, "GET", ops.LIST_EMBEDDING_MODELS),
    route("/api/v1/completions", text_completions, "POST", ops.TEXT_COMPLETIONS),
    route("/api/v1/models/count", count_models, "GET", ops.COUNT_MODELS),
    route("/api/v1/models/{author}/{slug}/endpoints", list_endpoints, "GET", ops.LIST_ENDPOINTS),
    route("/api/v1/model/{author}/{slug}", get_model, "GET", ops.GET_MODEL),
    route("/api/v1/providers", list_providers, "GET", ops.LIST_PROVIDERS),
    route("/api/v1/models/user", list_models_for_user, "GET", ops.LIST_MODELS_FOR_USER),
    route("/api/v1/key", current_key, "GET", ops.CURRENT_KEY),
    route("/api/v1/credits", credits, "GET", ops.CREDITS),
    route("/api/v1/keys", list_keys, "GET", ops.LIST_KEYS),
    route("/api/v1/keys", create_key, "POST", ops.CREATE_KEY),
    route("/api/v1/keys/{hash}", get_key, "GET", ops.GET_KEY),
    route("/api/v1/keys/{hash}", update_key, "PATCH", ops.UPDATE_KEY),
    route("/api/v1/keys/{hash}", delete_key, "DELETE", ops.DELETE_KEY),
    route("/api/v1/statements", list_statements, "GET", ops.STATEMENTS),
]
"""Every route with the operation it implements (``api/operations.py``): the OpenAPI document."""


def create_app(
    settings: Settings,
    services: Services | None = None,
    *,
    log_write: Callable[[bytes], object] = stderr_writer,
    metrics_file: Path | None = None,
) -> App:
    """The gateway app. Without ``services``, they are built from ``settings`` at start-up.

    Request log lines (when ``settings.logging`` has them on) go to ``log_write``: stderr. It
    refuses a route table with a route that has no operation: the document covers them all.
    ``metrics_file`` is given to a worker of ``serve --workers``: where it writes its metrics
    for the other workers, beside theirs (``api/worker_metrics.py``).
    """
    missing = undocumented(ROUTES)
    if missing:
        raise RuntimeError(f"routes without an operation (api/operations.py): {', '.join(missing)}")

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        owned = services is None
        running: Services = services if services is not None else await Services.start(settings)
        app.services = running
        running.start_background()
        if metrics_file is not None:
            app.worker_metrics = WorkerMetrics(running.metrics, metrics_file)
            app.worker_metrics.start()
        try:
            yield
        finally:
            if auth_failures is not None:
                await auth_failures.aclose()
            if owned:
                await running.aclose()
            else:
                await running.leases.stop()
            if app.worker_metrics is not None:
                await app.worker_metrics.aclose()  # last: what the shutdown counted is in it

    auth_failures = auth_failure_counter(settings.limits)
    app = App(
        [*ROUTES, dashboard_mount(), Mount(STATIC_PREFIX, app=StaticFiles(directory=STATIC))],
        edge=edge(settings, log_write=log_write, auth_failures=auth_failures),
        lifespan=lifespan,
    )
    app.auth_failures = auth_failures  # counted where a 401 is rendered
    if services is not None:
        app.services = services  # usable without a lifespan (httpx's ASGITransport)
    return app
