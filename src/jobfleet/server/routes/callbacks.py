"""A job's callback deliveries: GET /v1/jobs/{id}/callbacks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from jobfleet.server.deps import Svc
from jobfleet.server.permissions import Principal, Verb, require
from jobfleet.server.routes.jobs import json_response
from jobfleet.server.schemas import CallbackList

Watcher = Annotated[Principal, Depends(require(Verb.WATCH))]

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.get(
    "/jobs/{job_id}/callbacks",
    summary="A job's callback deliveries and attempts",
    response_model=CallbackList,
)
async def job_callbacks(job_id: str, svc: Svc, _: Watcher) -> Response:
    """One item per event sent to the job's `callback_url`: its state (pending, delivered,
    failed = given up), its attempts (time, status code or error, next retry) and the next
    retry."""
    items = await run_in_threadpool(svc.store.callback_deliveries, job_id)
    return json_response({"items": items})
