"""/v1/queues: list, create, get, update (PATCH), delete; and job-set reprioritize."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from jobfleet.config import FLEET_MAX, MaxResources, QueueConfig
from jobfleet.errors import NotFound
from jobfleet.failures.policy import RetryPolicy
from jobfleet.models import MAX_PRIORITY
from jobfleet.server.deps import Svc
from jobfleet.server.openapi import problems
from jobfleet.server.permissions import (
    AdminCaller,
    Caller,
    Principal,
    Verb,
    require,
    visible_queues,
)
from jobfleet.server.routes.jobs import json_response
from jobfleet.server.schemas import Queue, QueueList, Reprioritized

router = APIRouter(prefix="/v1", tags=["queues"])


class QueuePatch(BaseModel):
    """Fields to change; `null` removes a limit (or the queue's own retry policy)."""

    model_config = ConfigDict(extra="forbid")
    weight: float | None = Field(default=None, gt=0, le=1000)
    max_running_jobs: int | None = Field(default=None, ge=0, le=FLEET_MAX)
    max_resources: MaxResources | None = None
    retry: RetryPolicy | None = None


class JobSetPriority(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: int = Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)


@router.get("/queues", summary="List queues", response_model=QueueList)
async def list_queues(svc: Svc, caller: Caller) -> Response:
    """The queues the caller may see (any verb on a queue lets it see the queue)."""
    items: list[dict[str, Any]] = await run_in_threadpool(svc.store.list_queues)
    visible = visible_queues(caller)
    if visible is not None:
        items = [q for q in items if q["name"] in visible]
    return json_response({"items": items})


@router.post(
    "/queues",
    status_code=201,
    summary="Create a queue",
    response_model=Queue,
    responses=problems(409),
)
async def create_queue(body: QueueConfig, svc: Svc, _: AdminCaller) -> Response:
    return json_response(await run_in_threadpool(svc.store.create_queue, body), 201)


@router.get("/queues/{name}", summary="Get a queue", response_model=Queue)
async def get_queue(name: str, svc: Svc, caller: Caller) -> Response:
    visible = visible_queues(caller)
    if visible is not None and name not in visible:
        raise NotFound(f"no queue {name!r}")
    return json_response(await run_in_threadpool(svc.store.get_queue, name))


@router.patch(
    "/queues/{name}",
    summary="Change a queue's weight, limits or retry policy",
    response_model=Queue,
)
async def update_queue(name: str, body: QueuePatch, svc: Svc, _: AdminCaller) -> Response:
    changes = body.model_dump(mode="json", exclude_unset=True)
    return json_response(await run_in_threadpool(svc.store.update_queue, name, changes))


@router.delete(
    "/queues/{name}",
    status_code=204,
    summary="Delete a queue with no live job",
    response_model=None,
    responses=problems(409),
)
async def delete_queue(name: str, svc: Svc, _: AdminCaller) -> Response:
    await run_in_threadpool(svc.store.delete_queue, name)
    return Response(status_code=204)


@router.post(
    "/job-sets/{queue}/{job_set}/reprioritize",
    summary="Reprioritize a job set",
    response_model=Reprioritized,
    responses=problems(409),
)
async def reprioritize_job_set(
    queue: str,
    job_set: str,
    body: JobSetPriority,
    svc: Svc,
    caller: Annotated[Principal, Depends(require(Verb.REPRIORITIZE, on="queue"))],
) -> Response:
    """Every job of the set that has not ended gets `priority` (one `reprioritized` event
    each); the next scheduling cycle uses it."""
    n = await run_in_threadpool(
        lambda: svc.store.reprioritize_job_set(queue, job_set, body.priority, actor=caller.name)
    )
    return json_response({"reprioritized": n})
