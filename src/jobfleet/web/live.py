"""The dashboard's live feeds (SSE, authenticated by the sign-in cookie): lifecycle events,
and a run's log followed from where the page's tail ended.

Both are the API's own feeds (server/streams.py: framing, resume rule, keep-alives, log
follow); this module only shapes the messages for the page. The log feed starts at a byte
offset, so a page opened on a 100 MB log sends only what is new. Logs are read through
server/runlogs.py, as the API does: the file on this disk, or the chunks a
remote worker shipped. Both show only what the principal may `watch`: events of other queues
are filtered out, and the log of a job of a hidden queue is 404 like an unknown job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from jobfleet.errors import NotFound
from jobfleet.inputs import INT64_MAX
from jobfleet.server import streams
from jobfleet.server.permissions import visible_queues
from jobfleet.server.runlogs import RunLogs
from jobfleet.server.streams import Stream
from jobfleet.store import EventFilter
from jobfleet.web.access import job_queue
from jobfleet.web.auth import UiCaller
from jobfleet.web.common import svc
from jobfleet.worker.logpump import strip_timestamps

router = APIRouter(prefix="/ui")


@router.get("/stream", include_in_schema=False)
async def events_feed(
    request: Request,
    who: UiCaller,
    after: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
    job_id: str | None = None,
    queue: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Events after the browser's Last-Event-ID when EventSource reconnects, else after
    `after` (the newest the page had when it was rendered; 0: from the first event, as on
    /v1/events); from now on if neither is given."""
    flt = EventFilter(queues=[queue] if queue else [], job_id=job_id, visible=visible_queues(who))
    start = streams.resume_point(after, last_event_id)
    if start is None:
        start = await run_in_threadpool(svc(request).store.last_event_id)
    return streams.response(streams.event_stream(request, svc(request), flt, start))


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
    found, _ = await run_in_threadpool(svc(request).store.run_progress, job_id, run)  # 404 first
    if run and found != run:  # another job's run (maybe of a hidden queue): not this job's
        raise NotFound(f"job {job_id} has no run {run!r}")
    return streams.response(_follow(request, job_id, run, stream, offset))


async def _follow(
    request: Request, job_id: str, run: str | None, stream: Stream, offset: int
) -> AsyncIterator[str]:
    """`run` once the run is known, `log` events of text as it is written (with the offset it
    ends at), `end` once the run is over and all was sent (server/streams.py follows)."""
    yield ": following\n\n"
    async for item in streams.log_feed(request, svc(request), job_id, run, stream, offset):
        if item.kind == "run":
            yield streams.sse(None, "run", {"run": item.run})
        elif item.kind == "data":
            text = strip_timestamps(item.data.decode(errors="replace"))
            yield streams.sse(None, "log", {"text": text, "offset": item.offset})
        elif item.kind == "end":
            yield streams.sse(None, "end", {"state": item.state})
        else:
            yield streams.PING
