"""/v1/jobs/{id}/errors and /checkpoints: what went wrong in each attempt, and what it saved."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from jobfleet.server.deps import Svc
from jobfleet.server.permissions import Principal, Verb, require
from jobfleet.server.routes.jobs import json_response
from jobfleet.server.schemas import CheckpointList, ErrorPage

Watcher = Annotated[Principal, Depends(require(Verb.WATCH))]

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.get(
    "/jobs/{job_id}/errors",
    summary="Every failure of every attempt, newest first",
    response_model=ErrorPage,
)
async def errors(
    job_id: str,
    svc: Svc,
    _: Watcher,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Response:
    """Each item: `run_id`, `attempt`, `worker`, `time`, `event` and the `failure` as
    recorded when it happened (condition, exit code, signal, termination message, categories,
    retryable, message)."""
    items, nxt = await run_in_threadpool(
        lambda: svc.store.errors(job_id, limit=limit, cursor=cursor)
    )
    return json_response({"items": items, "next_cursor": nxt})


@router.get(
    "/jobs/{job_id}/checkpoints",
    summary="A job's checkpoints, newest first",
    response_model=CheckpointList,
)
async def checkpoints(job_id: str, svc: Svc, _: Watcher) -> Response:
    """The latest checkpoint of each run: `run_id`, `attempt`, `size` (bytes), `time`, `value`."""
    return json_response({"items": await run_in_threadpool(svc.store.checkpoints, job_id)})
