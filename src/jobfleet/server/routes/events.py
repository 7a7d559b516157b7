"""The global event stream, GET /v1/events (SSE), and live logs.

Resume: the stream starts after `Last-Event-ID` (or `?after=`). Because the store reads events
only up to its commit horizon (see store/horizon.py), reading `id > last` again and again yields
every event once, with no gap and no duplicate. An idle stream sends a `:` comment every
`sse_heartbeat`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from jobfleet.errors import InvalidInput
from jobfleet.lifecycle import EventType
from jobfleet.server.auth import Caller
from jobfleet.server.deps import Services, Svc
from jobfleet.server.permissions import visible_queues
from jobfleet.store import EventFilter

router = APIRouter(prefix="/v1", tags=["events"])
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event_id: int | None, event: str, data: object) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def _resume_point(after: int | None, last_event_id: str | None) -> int:
    if last_event_id:
        try:
            return int(last_event_id)
        except ValueError:
            raise InvalidInput(
                "Last-Event-ID must be an event id (an integer)",
                [{"loc": ["header", "last-event-id"], "msg": "not an integer"}],
            ) from None
    return after or 0


async def event_stream(
    request: Request, svc: Services, flt: EventFilter, after: int
) -> AsyncIterator[str]:
    heartbeat = svc.settings.sse_heartbeat
    last, quiet_since = after, time.monotonic()
    yield ": connected\n\n"
    while not await request.is_disconnected():
        batch = await run_in_threadpool(svc.store.events_after, last, flt, limit=1000)
        if batch:
            yield "".join(sse(e["id"], e["type"], e) for e in batch)
            last, quiet_since = batch[-1]["id"], time.monotonic()
            continue
        idle = time.monotonic() - quiet_since
        if idle >= heartbeat:
            yield ": ping\n\n"
            quiet_since = time.monotonic()
            continue
        # Events held back by a writer still committing come soon: look again shortly.
        soon = 0.02 if svc.store.horizon.behind() else 1.0
        await svc.broadcaster.wait(min(soon, heartbeat - idle))


@router.get("/events", summary="The event stream (SSE)", response_class=StreamingResponse)
async def events(
    request: Request,
    svc: Svc,
    caller: Caller,
    queue: Annotated[list[str] | None, Query()] = None,
    job_set: Annotated[list[str] | None, Query()] = None,
    job_id: str | None = None,
    type: Annotated[list[EventType] | None, Query()] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    flt = EventFilter(
        queues=queue or [],
        job_sets=job_set or [],
        job_id=job_id,
        types=[t.value for t in type or []],
        visible=visible_queues(caller),
    )
    start = _resume_point(after, last_event_id)
    return StreamingResponse(
        event_stream(request, svc, flt, start), media_type="text/event-stream", headers=SSE_HEADERS
    )
