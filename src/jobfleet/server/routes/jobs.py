"""/v1/jobs: submit, get, list, cancel, reprioritize, events, history."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from jobfleet.callbacks.ingress import check_callbacks
from jobfleet.config import Settings
from jobfleet.errors import InvalidInput
from jobfleet.inputs import CHECKED, loads
from jobfleet.lifecycle import JobState
from jobfleet.models import MAX_BATCH, MAX_PRIORITY, JobSpec
from jobfleet.scheduling.admission import admission_errors
from jobfleet.sealed import sealed_errors
from jobfleet.server.auth import Caller
from jobfleet.server.deps import Svc
from jobfleet.server.openapi import problems
from jobfleet.server.permissions import Principal, Verb, check_queue, require, visible_queues
from jobfleet.server.problems import validation_errors
from jobfleet.server.schemas import (
    ArraySubmitted,
    EventList,
    History,
    Job,
    JobBatch,
    JobPage,
    JobSetCancelled,
)
from jobfleet.store import JobFilter

router = APIRouter(prefix="/v1", tags=["jobs"])
CONTEXT = {CHECKED: True}  # what parse_submission validates has passed `inputs.loads`
Watcher = Annotated[Principal, Depends(require(Verb.WATCH))]
"""A caller that may see the job of the path (404 for a job in a hidden queue)."""


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=1000)


class JobSetCancelBody(CancelBody):
    states: list[JobState] | None = None


class ReprioritizeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: int = Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)


_SUBMIT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/JobSpec"},
                        {
                            "type": "object",
                            "properties": {
                                "jobs": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/JobSpec"},
                                    "maxItems": MAX_BATCH,
                                }
                            },
                            "required": ["jobs"],
                            "additionalProperties": False,
                        },
                    ]
                }
            }
        },
    }
}


def parse_submission(raw: bytes, *, checked: bool = False) -> tuple[list[JobSpec], bool]:
    """(specs, is_batch). Every error is named by its place: ["jobs", 3, "resources", "cpu"].

    `checked`: the edge decoded this body under `jobfleet.inputs` already (server/guard.py)."""
    # finite numbers, int64, no NUL or lone surrogate, bounded depth: once per body
    body = json.loads(raw) if checked else loads(raw)
    if not isinstance(body, dict):
        raise InvalidInput(
            'the body must be a job spec object or {"jobs": [...]}',
            [{"loc": ["body"], "msg": "expected an object"}],
        )
    batch = "jobs" in body
    if batch:
        items = body["jobs"]
        extra = sorted(set(body) - {"jobs"})
        if extra:
            raise InvalidInput(
                f"unknown field {extra[0]!r} beside 'jobs'",
                [{"loc": ["body", k], "msg": "Extra inputs are not permitted"} for k in extra],
            )
        if not isinstance(items, list) or not items:
            raise InvalidInput(
                "'jobs' must be a non-empty list", [{"loc": ["jobs"], "msg": "list"}]
            )
        if len(items) > MAX_BATCH:
            raise InvalidInput(
                f"at most {MAX_BATCH} jobs per request; split the batch",
                [{"loc": ["jobs"], "msg": f"{len(items)} items, at most {MAX_BATCH}"}],
            )
    else:
        items = [body]
    specs: list[JobSpec] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            specs.append(JobSpec.model_validate(item, context=CONTEXT))
            if batch and specs[-1].array is not None:
                msg = "an array is submitted on its own, not in a batch"
                errors.append({"loc": ["jobs", i, "array"], "msg": msg})
        except ValidationError as exc:
            prefix: tuple[Any, ...] = ("jobs", i) if batch else ()
            errors.extend(validation_errors(list(exc.errors(include_url=False)), prefix))
    if errors:
        first = ".".join(str(p) for p in errors[0]["loc"])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{first}: {errors[0]['msg']}{more}", errors[:200])
    return specs, batch


def refuse_unsealed(specs: list[JobSpec], batch: bool, allow: list[str]) -> None:
    """A sealed deployment refuses remote payloads and external callbacks (422, nothing stored)."""
    errors = sealed_errors(specs, batch=batch, allow=allow)
    if errors:
        first = ".".join(str(p) for p in errors[0]["loc"])
        raise InvalidInput(f"{first}: {errors[0]['msg']}", errors[:200])


def check_admission(specs: list[JobSpec], settings: Settings, *, batch: bool) -> None:
    """Priority classes must exist; a gang's members in one request must agree (422)."""
    classes = {c.name for c in settings.priority_classes}
    errors = admission_errors(specs, classes, batch=batch)
    if errors:
        first = ".".join(str(p) for p in errors[0]["loc"])
        raise InvalidInput(f"{first}: {errors[0]['msg']}", errors[:200])


@router.post(
    "/jobs",
    status_code=201,
    openapi_extra=_SUBMIT_DOC,
    summary="Submit jobs",
    response_model=Job | JobBatch | ArraySubmitted,
)
async def submit(request: Request, svc: Svc, caller: Caller) -> Response:
    """Submit one job spec, or a batch `{"jobs": [...]}` (≤ 10,000) stored all-or-nothing."""
    raw = await request.body()
    checked = bool(request.scope.get(CHECKED))

    def work() -> Response:  # one trip to the thread pool: parse, store, serialise
        specs, batch = parse_submission(raw, checked=checked)
        for queue in sorted({s.queue for s in specs}):  # nothing is stored if one is refused
            check_queue(caller, queue, Verb.SUBMIT)
        if svc.settings.sealed:
            refuse_unsealed(specs, batch, svc.settings.callbacks.allow)
        check_callbacks(specs, svc.settings, svc.store.queue_secret, batch=batch)
        check_admission(specs, svc.settings, batch=batch)
        seen = visible_queues(caller)  # depends_on: a hidden queue's job is "no job"
        if specs[0].array is not None and not batch:  # §14.1: one array of N jobs
            arr = svc.store.submit_array(specs[0], actor=caller.name, visible=seen)
            return json_response(arr, 201)
        if not batch:  # concurrent single submissions share one transaction (group commit)
            one = svc.store.submit_grouped(specs[0], actor=caller.name, visible=seen)
            return json_response(one, 201)
        jobs = svc.store.submit_views(specs, actor=caller.name, visible=seen)
        return json_response({"jobs": jobs}, 201)

    return await run_in_threadpool(work)


@router.get("/jobs", summary="List jobs, newest first", response_model=JobPage)
async def list_jobs(
    svc: Svc,
    caller: Caller,
    queue: str | None = None,
    job_set: str | None = None,
    state: Annotated[list[JobState] | None, Query()] = None,
    label: Annotated[list[str] | None, Query(description="k=v; repeat for AND")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    array_id: Annotated[str | None, Query(max_length=32)] = None,
    schedule: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Response:
    labels: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput("label filter is k=v", [{"loc": ["query", "label"], "msg": item}])
        labels[key] = value
    states = [s.value for s in state or []]
    flt = JobFilter(
        queue=queue,
        job_set=job_set,
        states=states,
        labels=labels,
        text=q,
        visible=visible_queues(caller),
        array_id=array_id,
        schedule=schedule,
    )
    items, nxt = await run_in_threadpool(svc.store.list_jobs, flt, limit=limit, cursor=cursor)
    return json_response({"items": items, "next_cursor": nxt})


@router.get("/jobs/{job_id}", summary="Get a job", response_model=Job)
async def get_job(job_id: str, svc: Svc, _: Watcher) -> Response:
    return json_response(await run_in_threadpool(svc.store.get_job, job_id))


@router.post(
    "/jobs/{job_id}/cancel", summary="Cancel a job", response_model=Job, responses=problems(409)
)
async def cancel(
    job_id: str,
    svc: Svc,
    caller: Annotated[Principal, Depends(require(Verb.CANCEL))],
    body: CancelBody | None = None,
) -> Response:
    reason = body.reason if body else None
    await run_in_threadpool(lambda: svc.store.cancel(job_id, reason=reason, actor=caller.name))
    return json_response(await run_in_threadpool(svc.store.get_job, job_id))


@router.post(
    "/jobs/{job_id}/reprioritize",
    summary="Change a job's priority",
    response_model=Job,
    responses=problems(409),
)
async def reprioritize(
    job_id: str,
    body: ReprioritizeBody,
    svc: Svc,
    caller: Annotated[Principal, Depends(require(Verb.REPRIORITIZE))],
) -> Response:
    await run_in_threadpool(
        lambda: svc.store.reprioritize(job_id, body.priority, actor=caller.name)
    )
    return json_response(await run_in_threadpool(svc.store.get_job, job_id))


@router.post(
    "/jobs/{job_id}/preempt",
    status_code=202,
    summary="Preempt a running job",
    response_model=Job,
    responses=problems(409),
)
async def preempt(
    job_id: str, svc: Svc, _: Annotated[Principal, Depends(require(Verb.PREEMPT))]
) -> Response:
    """Stop the job's run (SIGTERM, grace, SIGKILL); by default it is requeued, not counted."""
    await run_in_threadpool(svc.store.preempt, job_id)
    return json_response(await run_in_threadpool(svc.store.get_job, job_id), 202)


@router.post(
    "/jobs/{job_id}/retry",
    status_code=201,
    summary="Submit a finished job again",
    response_model=Job,
    responses=problems(409),
)
async def retry(
    job_id: str, svc: Svc, caller: Annotated[Principal, Depends(require(Verb.SUBMIT))]
) -> Response:
    """A terminal job's spec submitted again as a new job, with `retry_of` set."""
    seen = visible_queues(caller)
    job = await run_in_threadpool(
        lambda: svc.store.retry_as_new(job_id, actor=caller.name, visible=seen)
    )
    return json_response(job, 201)


@router.post(
    "/job-sets/{queue}/{job_set}/cancel",
    summary="Cancel a job set",
    response_model=JobSetCancelled,
    responses=problems(409),
)
async def cancel_job_set(
    queue: str,
    job_set: str,
    svc: Svc,
    caller: Annotated[Principal, Depends(require(Verb.CANCEL, on="queue"))],
    body: JobSetCancelBody | None = None,
) -> Response:
    states = [s.value for s in body.states] if body and body.states else None
    reason = body.reason if body else None
    counts = await run_in_threadpool(
        lambda: svc.store.cancel_job_set(
            queue, job_set, states=states, reason=reason, actor=caller.name
        )
    )
    return json_response(counts)


@router.get("/jobs/{job_id}/events", summary="A job's events, in order", response_model=EventList)
async def job_events(job_id: str, svc: Svc, _: Watcher) -> Response:
    return json_response({"items": await run_in_threadpool(svc.store.job_events, job_id)})


@router.get(
    "/jobs/{job_id}/history", summary="A job's timeline of transitions", response_model=History
)
async def history(job_id: str, svc: Svc, _: Watcher) -> Response:
    return json_response({"items": await run_in_threadpool(svc.store.history, job_id)})
