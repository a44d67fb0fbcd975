"""Operations: GET /health (no key) and GET /metrics (management keys)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from genledger.api.headers import header
from genledger.api.responses import json_response, services_of
from genledger.api.router import app_of
from genledger.errors import Forbidden


async def metrics(request: Request) -> Response:
    """Prometheus exposition, for management keys (Prometheus sends one as a bearer token):
    this gateway's metrics, or in a worker of ``serve --workers``, those of all its workers."""
    services = services_of(request)
    key = await services.auth.authenticate(header(request, b"authorization"))
    if not key.is_management:
        raise Forbidden("Only management keys may read metrics")
    workers = app_of(request).worker_metrics
    exposition = services.metrics.exposition() if workers is None else await workers.exposition()
    return Response(exposition, media_type=CONTENT_TYPE_LATEST)


async def health(_request: Request) -> Response:
    return json_response({"status": "ok"})
