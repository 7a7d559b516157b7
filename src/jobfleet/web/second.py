"""Dashboard pages of PRODUCT.md §14: schedules (next tick, last job, pause and resume) and a
job array (counts by state, its jobs). Usage per queue is on the overview (pages.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from jobfleet.errors import NotFound
from jobfleet.server.permissions import Verb, check_queue, visible_queues
from jobfleet.store import JobFilter
from jobfleet.web.auth import UiCaller, UiWriter
from jobfleet.web.common import render, svc

router = APIRouter(prefix="/ui", include_in_schema=False)
ARRAY_PAGE = 200


@router.get("/schedules")
async def schedules_page(request: Request, who: UiCaller) -> Response:
    store = svc(request).store
    items = await run_in_threadpool(store.schedule_views, visible_queues(who))
    for s in items:
        s["may_change"] = who.may(Verb.SUBMIT, str(s["job"].get("queue", "default")))
    return render(request, "schedules.html", who=who, schedules=items)


@router.post("/schedules/{name}/{action}")
async def schedule_action(request: Request, name: str, action: str, who: UiWriter) -> Response:
    """Pause or resume from the schedules page; back to it."""
    if action not in ("pause", "resume"):
        raise NotFound(f"no action {action!r}")
    store = svc(request).store
    queue = await run_in_threadpool(store.schedule_queue, name)
    if not who.may(Verb.WATCH, queue):
        raise NotFound(f"no schedule {name!r}")
    check_queue(who, queue, Verb.SUBMIT)
    await run_in_threadpool(store.pause_schedule, name, action == "pause")
    return RedirectResponse("/ui/schedules", status_code=303)


@router.get("/arrays/{array_id}")
async def array_page(request: Request, array_id: str, who: UiCaller) -> Response:
    """One row per array in spirit: its counts by state, then its jobs by index."""
    store = svc(request).store

    def read() -> dict[str, Any]:
        summary = store.array_summary(array_id)
        if not who.may(Verb.WATCH, summary["queue"]):
            raise NotFound(f"no array {array_id!r}")
        jobs, more = store.list_jobs(JobFilter(array_id=array_id), limit=ARRAY_PAGE)
        jobs.sort(key=lambda j: j["array_index"])
        return {"array": summary, "jobs": jobs, "more": more is not None}

    return render(request, "array.html", who=who, **await run_in_threadpool(read))
