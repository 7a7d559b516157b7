"""The HTTP API application (FastAPI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

import jobfleet
from jobfleet.config import Settings
from jobfleet.models import JobSpec
from jobfleet.runfiles import RunFiles
from jobfleet.server import problems
from jobfleet.server.auth import TokenCache
from jobfleet.server.deps import Services
from jobfleet.server.notify import Broadcaster
from jobfleet.server.routes import events, health, jobs, logs
from jobfleet.store import Store


class BodyLimit(BaseHTTPMiddleware):
    def __init__(self, app: object, limit: int) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.limit = limit

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.limit:
            return problems.problem(
                413,
                "Request too large",
                f"the body is {length} bytes; the limit is {self.limit}: send smaller batches",
            )
        return await call_next(request)


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
    store.subscribe(broadcaster.notify)
    problems.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    for module in (health, jobs, events, logs):
        app.include_router(module.router)
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
