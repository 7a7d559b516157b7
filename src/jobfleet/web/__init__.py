"""The web dashboard at /ui: server-rendered pages (Jinja2), htmx (vendored under static/),
live updates over SSE. `install(app)` adds it to the API application."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response

from jobfleet.errors import Forbidden, InvalidInput, NotFound
from jobfleet.server import problems
from jobfleet.web import job, live, pages, second
from jobfleet.web.auth import SignInNeeded
from jobfleet.web.common import HERE, render


def install(app: FastAPI) -> None:
    app.state.ui_cache = {}  # pages.py: counts of finished jobs, refreshed every 30 s
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    for module in (pages, live, job, second):
        app.include_router(module.router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        target = "/ui/login?next=" + quote(request.url.path, safe="/")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.headers.get("accept", "").startswith("text/event-stream"):
            return Response(status_code=401)
        return RedirectResponse(target, status_code=303)

    async def _as_page(request: Request, exc: Exception) -> Response:
        """A dashboard page that cannot be shown says why, as a page; the API's answer is
        unchanged (problem+json)."""
        assert isinstance(exc, InvalidInput | NotFound | Forbidden)
        if not request.url.path.startswith("/ui") or request.headers.get("hx-request"):
            return problems.problem(exc.status, exc.title, exc.detail, **exc.extra)
        errors = exc.extra.get("errors", [])
        title = "Check the filter"
        if isinstance(exc, NotFound | Forbidden):
            title = "Not found" if isinstance(exc, NotFound) else "Not allowed"
        return render(
            request, "error.html", status=exc.status, title=title, detail=exc.detail, errors=errors
        )

    app.add_exception_handler(InvalidInput, _as_page)
    app.add_exception_handler(NotFound, _as_page)
    app.add_exception_handler(Forbidden, _as_page)
