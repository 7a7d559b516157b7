"""/v1/schedules: jobs submitted on a cron or an interval (PRODUCT.md §14.2).

Creating or changing a schedule needs `submit` on its job's queue; seeing one needs `watch`
on it (a schedule of a hidden queue is 404); the ticks submit as the principal that created
the schedule. The leader scheduler fires the ticks (store/schedules.py).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.responses import Response

from jobfleet.access import Verb
from jobfleet.errors import InvalidInput, NotFound
from jobfleet.scheduling.periodic import ScheduleSpec
from jobfleet.server.deps import Services, Svc
from jobfleet.server.openapi import REF, problems
from jobfleet.server.permissions import ALL_QUEUES, Caller, Principal, check_queue, visible_queues
from jobfleet.server.problems import validation_errors
from jobfleet.server.schemas import Job, Schedule, ScheduleList

router = APIRouter(prefix="/v1", tags=["schedules"])


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    """The request body of a route that parses it itself (the document's own word for it)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def on_schedule(verb: Verb) -> Any:
    """The caller, once it may do `verb` on the schedule's queue (404 if hidden)."""

    async def check(name: str, request: Request, who: Caller) -> Principal:
        if not who.may(verb, ALL_QUEUES):
            svc: Services = request.app.state.services
            queue = await run_in_threadpool(svc.store.schedule_queue, name)
            if not who.may(Verb.WATCH, queue):
                raise NotFound(f"no schedule {name!r}")
            check_queue(who, queue, verb)
        return who

    return check


def _spec(body: Any) -> ScheduleSpec:
    try:
        return ScheduleSpec.model_validate(body)
    except ValidationError as exc:
        errors = validation_errors(list(exc.errors(include_url=False)), ())
        first = ".".join(str(p) for p in errors[0]["loc"])
        raise InvalidInput(f"{first}: {errors[0]['msg']}", errors[:50]) from exc


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        errors = [{"loc": ["body"], "msg": str(exc)}]
        raise InvalidInput("the body is not valid JSON", errors) from exc


@router.post(
    "/schedules",
    status_code=201,
    summary="Create a schedule",
    response_model=None,
    responses={201: {"model": Schedule}, **problems(409)},
    openapi_extra=_body_doc({"$ref": f"{REF}ScheduleSpec"}),
)
async def create(request: Request, svc: Svc, caller: Caller) -> dict[str, Any]:
    """`{"name", "cron" | "every", "timezone", "job": spec, "overlap", "catchup", "paused"}`."""
    spec = _spec(await _json_body(request))
    check_queue(caller, spec.job.queue, Verb.SUBMIT)
    return await run_in_threadpool(lambda: svc.store.create_schedule(spec, actor=caller.name))


@router.get(
    "/schedules",
    summary="Schedules, by name",
    response_model=None,
    responses={200: {"model": ScheduleList}},
)
async def list_schedules(svc: Svc, caller: Caller) -> dict[str, Any]:
    items = await run_in_threadpool(svc.store.schedule_views, visible_queues(caller))
    return {"items": items}


@router.get(
    "/schedules/{name}",
    summary="A schedule: its next tick and its last job",
    response_model=None,
    responses={200: {"model": Schedule}},
)
async def get_schedule(
    name: str, svc: Svc, _: Annotated[Principal, Depends(on_schedule(Verb.WATCH))]
) -> dict[str, Any]:
    return await run_in_threadpool(svc.store.schedule_view, name)


@router.patch(
    "/schedules/{name}",
    summary="Change some fields of a schedule",
    response_model=None,
    responses={200: {"model": Schedule}},
    openapi_extra=_body_doc({"type": "object", "description": "the fields to change"}),
)
async def update(
    name: str,
    request: Request,
    svc: Svc,
    caller: Annotated[Principal, Depends(on_schedule(Verb.SUBMIT))],
) -> dict[str, Any]:
    changes = await _json_body(request)
    if not isinstance(changes, dict) or "name" in changes:
        raise InvalidInput(
            "the body is an object of the fields to change (not the name)",
            [{"loc": ["body"], "msg": "expected an object without name"}],
        )

    def work() -> dict[str, Any]:
        try:
            view = svc.store.update_schedule(name, changes)
        except ValidationError as exc:
            errors = validation_errors(list(exc.errors(include_url=False)), ())
            first = ".".join(str(p) for p in errors[0]["loc"])
            raise InvalidInput(f"{first}: {errors[0]['msg']}", errors[:50]) from exc
        check_queue(caller, str(view["job"].get("queue", "default")), Verb.SUBMIT)
        return view

    return await run_in_threadpool(work)


@router.delete("/schedules/{name}", status_code=204, summary="Delete a schedule")
async def delete(
    name: str, svc: Svc, _: Annotated[Principal, Depends(on_schedule(Verb.SUBMIT))]
) -> Response:
    await run_in_threadpool(svc.store.delete_schedule, name)
    return Response(status_code=204)


@router.post(
    "/schedules/{name}/pause",
    summary="Pause a schedule: no tick fires",
    response_model=None,
    responses={200: {"model": Schedule}},
)
async def pause(
    name: str, svc: Svc, _: Annotated[Principal, Depends(on_schedule(Verb.SUBMIT))]
) -> dict[str, Any]:
    return await run_in_threadpool(svc.store.pause_schedule, name, True)


@router.post(
    "/schedules/{name}/resume",
    summary="Resume a schedule from its next tick",
    response_model=None,
    responses={200: {"model": Schedule}},
)
async def resume(
    name: str, svc: Svc, _: Annotated[Principal, Depends(on_schedule(Verb.SUBMIT))]
) -> dict[str, Any]:
    return await run_in_threadpool(svc.store.pause_schedule, name, False)


@router.post(
    "/schedules/{name}/trigger",
    status_code=201,
    summary="Submit the job now",
    response_model=None,
    responses={201: {"model": Job}, **problems(422)},
)
async def trigger(
    name: str, svc: Svc, caller: Annotated[Principal, Depends(on_schedule(Verb.SUBMIT))]
) -> dict[str, Any]:
    return await run_in_threadpool(lambda: svc.store.trigger_schedule(name, actor=caller.name))
