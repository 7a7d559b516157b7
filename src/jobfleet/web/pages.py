"""Dashboard pages: sign-in, overview, the jobs table (with bulk cancel), workers and shards.

Every page is server-rendered at a stable URL (filters live in the query string); fragments
that refresh in place are the same templates rendered alone for htmx.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from jobfleet.errors import Forbidden, InvalidInput, Unauthorized
from jobfleet.server.permissions import Principal, Verb, check_queue, visible_queues
from jobfleet.store import UsageQuery
from jobfleet.web import access
from jobfleet.web.auth import (
    COOKIE,
    COOKIE_PATH,
    MAX_AGE,
    OLD_COOKIE_PATH,
    WORKER_TOKEN,
    UiCaller,
    UiWriter,
    is_https,
    token_principal,
)
from jobfleet.web.auth import same_origin as check_origin
from jobfleet.web.common import filter_params, job_filter, render, svc

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE = 50
INVALID = "That token is not valid. Print yours with `jobfleet auth token`."
WAITING = ("WAITING", "QUEUED", "SCHEDULED")
FINAL_TTL = 30.0  # s: finished-job counts are one pass over a large index; live ones are exact


def _safe_next(target: str | None) -> str:
    """Only a path inside the dashboard (never another site) after signing in."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui/"


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login")
async def login(
    request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = ""
) -> Response:
    check_origin(request)
    try:
        await token_principal(request, token.strip())
    except Unauthorized as exc:
        error = exc.detail if exc.detail == WORKER_TOKEN else INVALID
        return render(request, "login.html", status=401, next=_safe_next(next), error=error)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        token.strip(),
        max_age=MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    check_origin(request)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    response.delete_cookie(COOKIE, path=OLD_COOKIE_PATH)
    return response


@router.get("")
async def root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/")
async def overview(request: Request, who: UiCaller) -> Response:
    return render(request, "overview.html", who=who, **await _overview(request, who))


@router.get("/overview/body")
async def overview_body(request: Request, who: UiCaller) -> Response:
    return render(request, "_overview_body.html", **await _overview(request, who))


async def _overview(request: Request, who: Principal) -> dict[str, Any]:
    """Queues, failures and the event rate, of the queues `who` may watch only. A queue's
    fair share is still its share of all weights (what the scheduler gives it)."""
    store = svc(request).store
    shown = visible_queues(who)
    cache: dict[str, Any] = request.app.state.ui_cache

    def read() -> dict[str, Any]:
        hit = cache.get("final")
        if hit is None or hit[0] < time.monotonic():
            hit = (time.monotonic() + FINAL_TTL, store.final_counts(), time.time())
            cache["final"] = hit
        queues = store.queue_overview(final=hit[1])
        weights = sum(q["weight"] or 0 for q in queues if q["weight"] is not None)
        for q in queues:
            q["share"] = (q["weight"] / weights) if weights and q["weight"] else None
        mine = [q for q in queues if shown is None or q["name"] in shown]
        return {
            "queues": mine,
            "failures": store.recent_failures(visible=shown),
            "rate": store.event_rate(visible=shown),
            "running_now": sum(q["states"].get("RUNNING", 0) for q in mine),
            "waiting_now": sum(q["states"].get(s, 0) for q in mine for s in WAITING),
            "final_at": hit[2],
            "usage": store.usage(UsageQuery(time.time() - 86400, time.time(), "queue", shown)),
        }

    return await run_in_threadpool(read)


CHART_WINDOWS = {"15m": 900.0, "1h": 3600.0, "24h": 86400.0}  # each drawn in 60 buckets


@router.get("/overview/series")
async def overview_series(request: Request, who: UiCaller, window: str = "1h") -> Response:
    """The overview charts' data (JSON): the last `window` in 60 buckets, of the queues `who`
    may watch."""
    if window not in CHART_WINDOWS:
        raise InvalidInput(
            f"window: one of {', '.join(CHART_WINDOWS)}", [{"loc": ["window"], "msg": window}]
        )
    span = CHART_WINDOWS[window]
    store = svc(request).store
    shown = visible_queues(who)
    data = await run_in_threadpool(
        lambda: store.overview_series(window=span, bucket=span / 60, visible=shown)
    )
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.get("/jobs")
async def jobs_page(
    request: Request, who: UiCaller, cursor: str | None = None, fragment: bool = False
) -> Response:
    params = filter_params(request)
    flt = access.watched(who, job_filter(params))
    oldest = params["sort"] == "oldest"
    store = svc(request).store

    def read() -> dict[str, Any]:
        rows, nxt = store.page_jobs(flt, limit=PAGE, cursor=cursor, oldest=oldest)
        rows = one_row_per_array(rows, store.array_summary)
        names = access.visible(who, store.queue_names())
        return {"rows": rows, "next": nxt, "queues": names, "last_event": store.last_event_id()}

    data = await run_in_threadpool(read)
    query = _query(params)
    template = "_jobs_rows.html" if fragment else "jobs.html"
    return render(
        request,
        template,
        who=who,
        params=params,
        query=query,
        cursor=cursor,
        live=not cursor and not oldest,
        may_cancel=access.may_bulk_cancel(who, flt.queue),
        **data,
    )


def one_row_per_array(
    rows: list[dict[str, Any]], summary: Callable[[str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The jobs of an array as one row (its first job on the page, with the array's size and
    counts by state: it opens into the array's page); other jobs as they are."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        array_id = row.get("array_id")
        if not array_id:
            out.append(row)
        elif array_id not in seen:
            seen.add(array_id)
            out.append({**row, "array": summary(array_id)})
    return out


def _query(params: dict[str, Any]) -> str:
    pairs: list[tuple[str, str]] = [
        (k, params[k]) for k in ("queue", "job_set", "q", "sort") if params.get(k)
    ]
    pairs += [("state", s) for s in params["state"]]
    pairs += [("label", s) for s in params["label"]]
    return urlencode(pairs)


@router.get("/jobs/cancel")
async def cancel_preview(request: Request, who: UiCaller) -> Response:
    """How many jobs a bulk cancel would touch, with a confirm button; and how many matching
    jobs it would leave because they are in queues where `who` may not cancel."""
    params = filter_params(request)
    flt = job_filter(params)
    store = svc(request).store

    def read() -> tuple[int, int]:
        count = store.count_cancellable(access.cancellable(who, flt))
        seen = store.count_cancellable(access.watched(who, flt))
        return count, seen - count

    count, skipped = await run_in_threadpool(read)
    return render(
        request, "_cancel_confirm.html", count=count, skipped=skipped, params=params, who=who
    )


@router.post("/jobs/cancel")
async def cancel_matching(
    request: Request,
    who: UiWriter,
    expected: Annotated[int, Form()],
    queue: Annotated[str, Form()] = "",
    job_set: Annotated[str, Form()] = "",
    q: Annotated[str, Form()] = "",
    state: Annotated[list[str] | None, Form()] = None,
    label: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Cancel the matching jobs of the queues where `who` may cancel; the others are left and
    counted. 403 if the filter names a queue it may not cancel in, or it may cancel nowhere."""
    labels = [v for v in label or [] if v]
    flt = job_filter({"queue": queue, "job_set": job_set, "q": q, "state": state, "label": labels})
    _may_bulk_cancel(who, flt.queue)
    store = svc(request).store

    def run() -> dict[str, int]:
        counts = store.cancel_matching(
            access.cancellable(who, flt), reason="bulk cancel from the dashboard", actor=who.name
        )
        counts["skipped"] = store.count_cancellable(access.watched(who, flt))
        return counts

    counts = await run_in_threadpool(run)
    return render(request, "_cancel_done.html", counts=counts, expected=expected)


def _may_bulk_cancel(who: Principal, queue: str | None) -> None:
    if queue:
        check_queue(who, queue, Verb.CANCEL)
    elif not access.may_bulk_cancel(who, None):
        raise Forbidden(
            f"principal {who.name!r} may not cancel in any queue "
            "(a bulk cancel needs the verb 'cancel' on the queues of its jobs)",
            verb=Verb.CANCEL.value,
        )


@router.get("/workers")
async def workers_page(request: Request, who: UiCaller, fragment: bool = False) -> Response:
    lease = svc(request).settings.lease_timeout
    ws = await run_in_threadpool(lambda: svc(request).store.dashboard_workers(lease_timeout=lease))
    template = "_workers_body.html" if fragment else "workers.html"
    return render(request, template, who=who, workers=ws, shards=_shards(ws))


def _shards(ws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for w in ws:
        s = out.setdefault(
            w["shard"],
            {"name": w["shard"], "workers": 0, "alive": 0, "draining": 0, "cap": {}, "used": {}},
        )
        s["workers"] += 1
        s["alive"] += int(w["alive"])
        s["draining"] += int(w["draining"])
        for key in ("cpu", "memory", "gpu"):
            s["cap"][key] = s["cap"].get(key, 0) + (w["capacity"][key] if w["alive"] else 0)
            s["used"][key] = s["used"].get(key, 0) + w["allocated"][key]
        s["runs"] = s.get("runs", 0) + w["allocated"]["jobs"]
    for s in out.values():
        shares = [s["used"][k] / s["cap"][k] for k in ("cpu", "memory", "gpu") if s["cap"][k]]
        s["utilisation"] = max(shares) if shares else 0.0
    return list(out.values())
