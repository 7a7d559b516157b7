"""GET /metrics (Prometheus text format). Unauthenticated unless `metrics.auth: true`, as
Prometheus usually scrapes without a token; it shows counts per queue, never job contents."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from jobfleet.metrics import Metrics
from jobfleet.server.auth import BEARER, require_principal
from jobfleet.server.deps import Svc
from jobfleet.server.openapi import problems

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "The Prometheus text format (docs/operations.md lists the metrics)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **problems(401, 403),
    },
    openapi_extra={"security": [{}, {BEARER: []}]},  # a token only with `metrics.auth: true`
)
async def metrics(request: Request, svc: Svc) -> Response:
    if svc.settings.metrics.auth:
        await require_principal(request)
    registry: Metrics = request.app.state.metrics
    body = await run_in_threadpool(registry.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
