"""/v1/arrays: a job array's summary and its cancel (PRODUCT.md §14.1). Arrays are submitted
through `POST /v1/jobs` with an `array` field."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from jobfleet.errors import NotFound
from jobfleet.server.deps import Services, Svc
from jobfleet.server.permissions import ALL_QUEUES, Caller, Principal, Verb, check_queue
from jobfleet.server.routes.jobs import CancelBody
from jobfleet.server.schemas import Array, ArrayCancelled

router = APIRouter(prefix="/v1", tags=["arrays"])


def on_array(verb: Verb) -> Any:
    """The caller, once it may do `verb` on the array's queue (404 if it cannot see it)."""

    async def check(array_id: str, request: Request, who: Caller) -> Principal:
        if not who.may(verb, ALL_QUEUES):
            svc: Services = request.app.state.services
            queue = await run_in_threadpool(svc.store.array_queue, array_id)
            if not who.may(Verb.WATCH, queue):  # hidden: the answer for an array that is not
                raise NotFound(f"no array {array_id!r}")
            check_queue(who, queue, verb)
        return who

    return check


@router.get(
    "/arrays/{array_id}",
    summary="A job array: its size and its jobs' counts by state",
    response_model=None,
    responses={200: {"model": Array}},
)
async def get_array(
    array_id: str, svc: Svc, _: Annotated[Principal, Depends(on_array(Verb.WATCH))]
) -> dict[str, Any]:
    summary = await run_in_threadpool(svc.store.array_summary, array_id)
    return {**summary, "jobs_url": f"/v1/jobs?array_id={array_id}"}


@router.post(
    "/arrays/{array_id}/cancel",
    summary="Cancel every unfinished job of an array",
    response_model=None,
    responses={200: {"model": ArrayCancelled}},
)
async def cancel_array(
    array_id: str,
    svc: Svc,
    caller: Annotated[Principal, Depends(on_array(Verb.CANCEL))],
    body: CancelBody | None = None,
) -> dict[str, Any]:
    reason = body.reason if body else None
    counts = await run_in_threadpool(
        lambda: svc.store.cancel_array(array_id, reason=reason, actor=caller.name)
    )
    return {"array_id": array_id, **counts}
