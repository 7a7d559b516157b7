"""The HTTP API application (FastAPI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import jobfleet
from jobfleet.config import Settings
from jobfleet.metrics import Metrics
from jobfleet.runfiles import RunFiles
from jobfleet.server import openapi, problems
from jobfleet.server.auth import TokenCache
from jobfleet.server.deps import Services
from jobfleet.server.guard import InputGuard
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
from jobfleet.store.wakeups import WORKER_KINDS
from jobfleet.web import install as install_dashboard


class Shutdown:
    """Set once the server shuts down. `begin` is called from the signal handler (runtime.py)."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self.broadcaster = broadcaster
        self.closed = False

    def begin(self) -> None:
        self.closed = True
        self.broadcaster.notify()  # event streams waiting for news look now


class ClosingStreams:
    """Once the server shuts down, open streams (SSE: events, logs, the dashboard's) see their
    client as gone at their next look and end, so the shutdown neither waits on them nor
    cancels them mid-write (a traceback each)."""

    def __init__(self, app: ASGIApp, shutdown: Shutdown) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        shutdown = self.shutdown

        async def closing_receive() -> Message:
            if shutdown.closed:
                return {"type": "http.disconnect"}
            return await receive()

        await self.app(scope, closing_receive, send)


def create_app(store: Store, settings: Settings, files: RunFiles) -> FastAPI:
    broadcaster = Broadcaster()
    leases = Broadcaster()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        broadcaster.bind(asyncio.get_running_loop())
        leases.bind(asyncio.get_running_loop())
        yield

    app = FastAPI(
        title="jobfleet",
        version=jobfleet.__version__,
        description="A distributed batch-job orchestrator.",
        lifespan=lifespan,
        docs_url=None,  # served below, from jobfleet's own files (no CDN)
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id_for({}),
    )
    app.state.services = Services(store, settings, files, broadcaster, leases)
    app.state.tokens = TokenCache(store)
    categories = [c.name for c in settings.error_categories]
    app.state.metrics = Metrics(store, lease_timeout=settings.lease_timeout, categories=categories)
    store.subscribe(broadcaster.notify)
    store.subscribe(leases.notify, kinds=WORKER_KINDS)
    problems.install(app)
    app.add_middleware(InputGuard, limit=settings.max_request_bytes)
    app.state.shutdown = Shutdown(broadcaster)
    app.add_middleware(ClosingStreams, shutdown=app.state.shutdown)
    for module in (health, jobs, events, logs, callbacks, metrics, principals, fleet, queues):
        app.include_router(module.router)
    for extra in (arrays, cordons, usage, schedules):
        app.include_router(extra.router)
    app.include_router(failure_routes.router)
    install_dashboard(app)
    openapi.install(app)
    app.add_api_route("/docs", api_docs, include_in_schema=False)
    return app


SWAGGER_UI = "/ui/static/vendor/swagger-ui-5.35.0"


async def api_docs() -> HTMLResponse:
    """Swagger UI on the OpenAPI document, from files jobfleet serves itself: works offline."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="jobfleet API",
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from elsewhere
    )
