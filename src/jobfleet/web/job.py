"""The job page: spec, state and its actions, timeline, runs, checkpoints, dependencies,
events (a page at a time) and logs (a tail, then followed live while the job runs).

Buttons come from the job object's `actions` (lifecycle/actions.py): enabled as it says and
only if the principal has the action's verb on the job's queue (`web/access.py`), with a
spinner where an action is in progress (e.g. Cancel while `cancel_requested`). A job of a
queue the principal may not watch is 404 on every route here, like an unknown job.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from jobfleet.errors import InvalidInput, JobfleetError
from jobfleet.inputs import INT64_MAX
from jobfleet.models import MAX_PRIORITY
from jobfleet.server.permissions import Principal, visible_queues
from jobfleet.web.access import ACTION_VERBS, job_queue, permitted_actions
from jobfleet.web.auth import UiCaller, UiWriter
from jobfleet.web.common import render, svc
from jobfleet.web.live import read_tail, run_logs

router = APIRouter(prefix="/ui", include_in_schema=False)
LOG_TAIL = 64 * 1024
EVENTS_PAGE = 50
TIMELINE = 200
RUNS_SHOWN = 50
Stream = Literal["stdout", "stderr"]


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str, who: UiCaller) -> Response:
    panel = await _panel(request, who, job_id)
    store = svc(request).store
    events, older = await run_in_threadpool(
        lambda: store.job_events_page(job_id, limit=EVENTS_PAGE)
    )
    return render(
        request,
        "job.html",
        who=who,
        events=events,
        older=older,
        log=await _default_log(request, panel["job"]),
        **panel,
    )


@router.get("/jobs/{job_id}/panel")
async def job_panel(request: Request, job_id: str, who: UiCaller) -> Response:
    return render(request, "_job_panel.html", **await _panel(request, who, job_id))


async def _panel(
    request: Request, who: Principal, job_id: str, notice: str | None = None
) -> dict[str, Any]:
    await job_queue(request, who, job_id)  # 404 for a job of a hidden queue
    store = svc(request).store

    def read() -> dict[str, Any]:
        job = store.job_page_view(job_id, runs_limit=RUNS_SHOWN)
        job["actions"] = permitted_actions(who, job)
        timeline, earlier = store.recent_history(job_id, limit=TIMELINE)
        deps = [d.get("job_id") for d in job["spec"].get("depends_on") or []]
        return {
            "job": job,
            "timeline": timeline,
            "earlier": earlier,
            "deps": store.jobs_brief([str(d) for d in deps if d], visible_queues(who)),
            "checkpoints": _checkpoints(store, job_id),
            "notice": notice,
        }

    return await run_in_threadpool(read)


def _checkpoints(store: Any, job_id: str) -> list[dict[str, Any]] | None:
    """The job's checkpoints where the store keeps them; None (no section) where it does not."""
    reader = getattr(store, "list_checkpoints", None) or getattr(store, "checkpoints", None)
    if not callable(reader):
        return None
    try:
        found = reader(job_id)
    except JobfleetError:
        return None
    items = found.get("items", []) if isinstance(found, dict) else found
    return [dict(c) for c in items]


@router.get("/jobs/{job_id}/events")
async def job_events(
    request: Request,
    job_id: str,
    who: UiCaller,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> Response:
    await job_queue(request, who, job_id)
    store = svc(request).store
    events, older = await run_in_threadpool(
        lambda: store.job_events_page(job_id, limit=EVENTS_PAGE, before=before)
    )
    return render(request, "_events_rows.html", job_id=job_id, events=events, older=older)


@router.get("/jobs/{job_id}/log")
async def job_log(
    request: Request, job_id: str, who: UiCaller, stream: Stream = "stdout", run: str | None = None
) -> Response:
    await job_queue(request, who, job_id)
    store = svc(request).store
    job = await run_in_threadpool(lambda: store.job_page_view(job_id, runs_limit=RUNS_SHOWN))
    return render(request, "_log.html", job=job, log=await _log(request, job, stream, run))


async def _default_log(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    """stdout, unless stderr tells more: a failed job's story is usually there, so a FAILED
    job opens on stderr when it has any; any ended job whose stdout is empty does too."""
    if job["state"] == "FAILED" and job["runs"]:
        err = await _log(request, job, "stderr")
        if err["text"]:
            return err
    out = await _log(request, job, "stdout")
    if not out["text"] and out["run"] and not out["live"]:
        err = await _log(request, job, "stderr")
        if err["text"]:
            return err
    return out


async def _log(
    request: Request, job: dict[str, Any], stream: Stream, run: str | None = None
) -> dict[str, Any]:
    runs = job["runs"]
    chosen = next((r for r in runs if r["id"] == run), None) if run else None
    chosen = chosen or (runs[-1] if runs else None)
    text, end, skipped = "", 0, 0
    if chosen is not None:
        logs = run_logs(request)
        text, end, skipped = await run_in_threadpool(
            read_tail, logs, chosen["id"], stream, LOG_TAIL
        )
    live = job["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED", "PREEMPTED")
    return {
        "stream": stream,
        "run": chosen["id"] if chosen else None,
        "text": text,
        "offset": end,
        "skipped": skipped,
        "live": live,
    }


@router.post("/jobs/{job_id}/actions/{action}")
async def act(
    request: Request,
    job_id: str,
    action: Literal["cancel", "reprioritize", "preempt", "retry"],
    who: UiWriter,
    priority: Annotated[int | None, Form()] = None,
) -> Response:
    """Run one action, then answer with the panel (or the new job's link for retry). 404 for
    a job of a hidden queue; 403 naming the queue and the verb when the verb is missing."""
    await job_queue(request, who, job_id, ACTION_VERBS[action])
    store = svc(request).store
    notice = None
    try:
        if action == "cancel":
            await run_in_threadpool(lambda: store.cancel(job_id, actor=who.name))
        elif action == "preempt":
            await run_in_threadpool(store.preempt, job_id)
        elif action == "reprioritize":
            value = _priority(priority)
            await run_in_threadpool(lambda: store.reprioritize(job_id, value, actor=who.name))
        else:
            seen = visible_queues(who)
            new = await run_in_threadpool(
                lambda: store.retry_as_new(job_id, actor=who.name, visible=seen)
            )
            notice = f"Submitted again as {new['id']}"
            response = render(
                request, "_job_panel.html", **await _panel(request, who, job_id, notice)
            )
            response.headers["HX-Redirect"] = f"/ui/jobs/{new['id']}"
            return response
    except JobfleetError as exc:
        notice = exc.detail
    return render(request, "_job_panel.html", **await _panel(request, who, job_id, notice))


def _priority(value: int | None) -> int:
    if value is None or abs(value) > MAX_PRIORITY:
        raise InvalidInput(
            f"priority: give a whole number between -{MAX_PRIORITY} and {MAX_PRIORITY}",
            [{"loc": ["priority"], "msg": "out of range"}],
        )
    return value
