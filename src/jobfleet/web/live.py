"""The dashboard's live feeds (SSE, authenticated by the sign-in cookie): lifecycle events,
and a run's log followed from where the page's tail ended.

The event feed is the API's own stream (same resume rule, same heartbeats); the log feed reads
the run's log from a byte offset, so a page opened on a 100 MB log sends only what is new.
Both read through server/runlogs.py, as the API does: the file on this disk, or the chunks a
remote worker shipped. Both show only what the principal may `watch`: events of other queues
are filtered out, and the log of a job of a hidden queue is 404 like an unknown job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from jobfleet.errors import NotFound
from jobfleet.inputs import INT64_MAX
from jobfleet.server.permissions import visible_queues
from jobfleet.server.routes.events import SSE_HEADERS, _resume_point, event_stream, sse
from jobfleet.server.runlogs import RunLogs
from jobfleet.store import EventFilter
from jobfleet.web.access import job_queue
from jobfleet.web.auth import UiCaller
from jobfleet.web.common import svc
from jobfleet.worker.logpump import strip_timestamps

router = APIRouter(prefix="/ui")
POLL = 0.25
STATE_EVERY = 1.0
CHUNK = 256 * 1024
Stream = Literal["stdout", "stderr"]


@router.get("/stream", include_in_schema=False)
async def events_feed(
    request: Request,
    who: UiCaller,
    after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    job_id: str | None = None,
    queue: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Events after `after` (the newest the page had when it was rendered), or after the
    browser's Last-Event-ID when EventSource reconnects; from now on if neither is given."""
    flt = EventFilter(queues=[queue] if queue else [], job_id=job_id, visible=visible_queues(who))
    start = _resume_point(after, last_event_id)
    if not start:
        start = await run_in_threadpool(svc(request).store.last_event_id)
    return StreamingResponse(
        event_stream(request, svc(request), flt, start),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


def run_logs(request: Request) -> RunLogs:
    return RunLogs(svc(request).files, svc(request).store)


def read_tail(logs: RunLogs, run_id: str, stream: Stream, limit: int) -> tuple[str, int, int]:
    """(text, end offset, bytes skipped before it): the last `limit` bytes, whole lines, as
    the job wrote them (the stored timestamps left out; offsets count the stored bytes)."""
    data, start, size = logs.tail(run_id, stream, limit)
    if start:
        cut = data.find(b"\n") + 1
        data, start = data[cut:], start + cut
    return strip_timestamps(data.decode(errors="replace")), size, start


def _lines(chunk: bytes, whole: bool) -> bytes:
    """The complete lines of `chunk` (all of it if `whole`): a line's timestamp is only
    stripped once the line is all there."""
    cut = len(chunk) if whole else chunk.rfind(b"\n") + 1
    return chunk[:cut] if cut or len(chunk) < CHUNK else chunk  # a full chunk with no newline


def run_state(request: Request, job_id: str, run_id: str | None) -> tuple[str | None, str]:
    """(the run followed — the named one, else the latest —, its state or the job's)."""
    return svc(request).store.run_progress(job_id, run_id)


@router.get("/jobs/{job_id}/logs/stream", include_in_schema=False)
async def follow_log(
    request: Request,
    job_id: str,
    who: UiCaller,
    stream: Stream = "stdout",
    run: str | None = None,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> StreamingResponse:
    await job_queue(request, who, job_id)  # 404 for a job of a hidden queue
    found, _ = await run_in_threadpool(svc(request).store.run_progress, job_id, run)
    if run and found != run:  # another job's run (maybe of a hidden queue): not this job's
        raise NotFound(f"job {job_id} has no run {run!r}")
    return StreamingResponse(
        _follow(request, job_id, run, stream, offset),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


async def _follow(
    request: Request, job_id: str, run: str | None, stream: Stream, offset: int
) -> AsyncIterator[str]:
    """`log` events of text as it is written; `end` once the run is over and all was sent."""
    yield ": following\n\n"
    logs = run_logs(request)
    run_id, state = run, "?"
    checked = 0.0
    while not await request.is_disconnected():
        if time.monotonic() - checked >= STATE_EVERY or run_id is None:
            found, state = await run_in_threadpool(run_state, request, job_id, run_id)
            checked = time.monotonic()
            if found != run_id and found is not None:
                offset = 0 if run_id is not None else offset
                run_id = found
                yield sse(None, "run", {"run": run_id})
        if run_id is None:
            if state in ("SUCCEEDED", "FAILED", "CANCELLED", "PREEMPTED"):
                yield sse(None, "end", {"state": state})
                return
            await asyncio.sleep(POLL)
            continue
        over = state not in ("LEASED", "RUNNING")
        chunk = await run_in_threadpool(logs.read_from, run_id, stream, offset, CHUNK)
        chunk = _lines(chunk, over)
        if chunk:
            offset += len(chunk)
            text = strip_timestamps(chunk.decode(errors="replace"))
            yield sse(None, "log", {"text": text, "offset": offset})
            continue
        if over:
            yield sse(None, "end", {"state": state})
            return
        await asyncio.sleep(POLL)
