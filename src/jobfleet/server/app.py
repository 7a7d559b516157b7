"""The HTTP API application (FastAPI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

import jobfleet
from jobfleet.config import Settings
from jobfleet.metrics import Metrics
from jobfleet.models import JobSpec
from jobfleet.runfiles import RunFiles
from jobfleet.server import problems
from jobfleet.server.auth import TokenCache
from jobfleet.server.deps import Services
from jobfleet.server.notify import Broadcaster
from jobfleet.server.routes import (
    arrays,
    callbacks,
    cordons,
    events,
    fleet,
    health,
    jobs,
    logs,
    metrics,
    principals,
    queues,
    schedules,
    usage,
)
from jobfleet.server.routes import failures as failure_routes
from jobfleet.store import Store
from jobfleet.web import install as install_dashboard


class BodyLimit:
    """Refuse a request whose declared body is over the limit (413) before reading it.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs a task and a stream per call.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    response = problems.problem(
                        413,
                        "Request too large",
                        f"the body is {int(value)} bytes; the limit is {self.limit}: "
                        "send smaller batches",
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(store: Store, settings: Settings, files: RunFiles) -> FastAPI:
    broadcaster = Broadcaster()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        broadcaster.bind(asyncio.get_running_loop())
        yield

    app = FastAPI(
        title="jobfleet",
        version=jobfleet.__version__,
        description="A distributed batch-job orchestrator.",
        lifespan=lifespan,
    )
    app.state.services = Services(store, settings, files, broadcaster)
    app.state.tokens = TokenCache(store)
    app.state.metrics = Metrics(store, lease_timeout=settings.lease_timeout)
    store.subscribe(broadcaster.notify)
    problems.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    for module in (health, jobs, events, logs, callbacks, metrics, principals, fleet, queues):
        app.include_router(module.router)
    for extra in (arrays, cordons, usage, schedules):
        app.include_router(extra.router)
    app.include_router(failure_routes.router)
    install_dashboard(app)
    _publish_spec_schema(app)
    return app


def _publish_spec_schema(app: FastAPI) -> None:
    """Put JobSpec into the OpenAPI components (the submit route parses its body itself)."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        defs = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs.pop("$defs", {}))
        components["JobSpec"] = defs
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
