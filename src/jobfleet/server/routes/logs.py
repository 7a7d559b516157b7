"""GET /v1/jobs/{id}/logs: a run's stdout or stderr, whole or followed live (SSE).

The worker stores each line with the time it was read in front (worker/logpump.py); plain
text leaves it out unless `timestamps=true`. Followed lines carry it as `time`. The log is
read from this server's disk, or from the chunks a remote worker shipped (server/runlogs.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from jobfleet.errors import NotFound
from jobfleet.server.deps import Services, Svc
from jobfleet.server.permissions import Principal, Verb, require
from jobfleet.server.routes.events import SSE_HEADERS, sse
from jobfleet.server.runlogs import RunLogs
from jobfleet.worker.logpump import split_stamp, strip_timestamps

router = APIRouter(prefix="/v1", tags=["logs"])
Stream = Literal["stdout", "stderr"]
CHUNK = 1 << 20
MAX_TEXT = 16 * 2**20
POLL = 0.2


def _pick_run(job: dict[str, object], run: str | None) -> dict[str, object] | None:
    runs = job["runs"]
    assert isinstance(runs, list)
    if run is None:
        return runs[-1] if runs else None
    for r in runs:
        if r["id"] == run:
            return dict(r)
    raise NotFound(f"job {job['id']} has no run {run!r}")


def _read_tail(
    logs: RunLogs, run_id: str, stream: Stream, limit: int, timestamps: bool = False
) -> str:
    data, _, size = logs.tail(run_id, stream, limit)
    text = data.decode(errors="replace")
    if not timestamps:
        text = strip_timestamps(text)
    return f"[… {size - limit} earlier bytes not shown]\n{text}" if size > limit else text


@router.get("/jobs/{job_id}/logs", summary="A run's output", response_model=None)
async def logs(
    job_id: str,
    request: Request,
    svc: Svc,
    _: Annotated[Principal, Depends(require(Verb.WATCH))],
    stream: Literal["stdout", "stderr"] = "stdout",
    run: str | None = None,
    follow: bool = False,
    tail: Annotated[int, Query(ge=1, le=MAX_TEXT)] = MAX_TEXT,
    timestamps: bool = False,
) -> Response:
    job = await run_in_threadpool(svc.store.get_job, job_id)
    chosen = _pick_run(job, run)
    if not follow:
        if chosen is None:
            return PlainTextResponse("")
        logs = RunLogs(svc.files, svc.store)
        run_id = str(chosen["id"])
        text = await run_in_threadpool(_read_tail, logs, run_id, stream, tail, timestamps)
        return PlainTextResponse(text)
    return StreamingResponse(
        _follow(request, svc, job_id, run, stream),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


async def _follow(
    request: Request,
    svc: Services,
    job_id: str,
    run: str | None,
    stream: Literal["stdout", "stderr"],
) -> AsyncIterator[str]:
    """Lines as they are written; `end` once the run is over and everything was sent."""
    yield ": following\n\n"
    chosen = None
    while chosen is None:  # wait for the job to get a run
        job = await run_in_threadpool(svc.store.get_job, job_id)
        chosen = _pick_run(job, run)
        if chosen is None:
            if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED", "PREEMPTED"):
                yield sse(None, "end", {"state": job["state"]})
                return
            await asyncio.sleep(POLL)
    run_id = str(chosen["id"])
    logs = RunLogs(svc.files, svc.store)
    offset, pending = 0, b""
    while not await request.is_disconnected():
        chunk = await run_in_threadpool(logs.read_from, run_id, stream, offset, CHUNK)
        offset += len(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if lines:
            yield "".join(sse(None, "log", _line(ln)) for ln in lines)
            continue
        state = await run_in_threadpool(_run_state, svc, job_id, run_id)
        if state not in ("LEASED", "RUNNING"):
            tail_chunk = await run_in_threadpool(logs.read_from, run_id, stream, offset, CHUNK)
            rest = pending + tail_chunk
            if rest:
                for ln in rest.split(b"\n"):
                    if ln:
                        yield sse(None, "log", _line(ln))
            yield sse(None, "end", {"state": state})
            return
        await asyncio.sleep(POLL)


def _run_state(svc: Services, job_id: str, run_id: str) -> str:
    for r in svc.store.get_job(job_id)["runs"]:
        if r["id"] == run_id:
            return str(r["state"])
    return "LOST"


def _line(raw: bytes) -> dict[str, str | None]:
    when, text = split_stamp(raw.decode(errors="replace"))
    return {"line": text, "time": when}
