"""Errors as application/problem+json (RFC 9457): one status per error class."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from jobfleet.errors import JobfleetError, plain_message

log = logging.getLogger("jobfleet.server")
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(json.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


def validation_errors(errors: list[Any], prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *e["loc"]], "msg": plain_message(e["msg"])} for e in errors]


def install(app: FastAPI) -> None:
    @app.exception_handler(JobfleetError)
    async def _jobfleet(_: Request, exc: JobfleetError) -> Response:
        if exc.status >= 500:
            log.error("request failed: %s", exc.detail)
        return problem(exc.status, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(list(exc.errors()))
        if not errors:
            return problem(422, "Invalid request", "invalid request", errors=errors)
        loc = [str(p) for p in errors[0]["loc"]]
        where = ".".join(loc[1:] if len(loc) > 1 and loc[0] == "body" else loc)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        detail = f"{where}: {errors[0]['msg']}{more}"
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return problem(500, "Internal error", "the server failed; see its log")
