"""The global event stream, GET /v1/events (SSE).

Resume, framing and keep-alives are server/streams.py's. A browser follows the stream with
`EventSource` on the same origin, authenticated by the dashboard's session cookie (an
EventSource cannot send a bearer token, and no token goes in a URL); any other client sends
its bearer token.
Because the store reads events only up to its commit horizon (store/horizon.py), reading
`id > last` again and again yields every event once, with no gap and no duplicate.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import StreamingResponse

from jobfleet.inputs import INT64_MAX
from jobfleet.lifecycle import EventType
from jobfleet.server import streams
from jobfleet.server.auth import StreamCaller
from jobfleet.server.deps import Svc
from jobfleet.server.openapi import event_stream_doc
from jobfleet.server.permissions import visible_queues
from jobfleet.store import EventFilter

router = APIRouter(prefix="/v1", tags=["events"])


@router.get(
    "/events",
    summary="The event stream (SSE)",
    response_class=StreamingResponse,
    responses=event_stream_doc("Event"),
)
async def events(
    request: Request,
    svc: Svc,
    caller: StreamCaller,
    queue: Annotated[list[str] | None, Query()] = None,
    job_set: Annotated[list[str] | None, Query()] = None,
    job_id: str | None = None,
    type: Annotated[list[EventType] | None, Query()] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=INT64_MAX, description="start after this event id (0: from the first)"),
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Every event the caller may see, in id order, then live ones: one SSE message each, with
    `id:` the event id, `event:` its type and `data:` the Event as JSON; a `: ping` comment
    after `sse_heartbeat` seconds of silence. Resumes after `Last-Event-ID`, else `after`."""
    flt = EventFilter(
        queues=queue or [],
        job_sets=job_set or [],
        job_id=job_id,
        types=[t.value for t in type or []],
        visible=visible_queues(caller),
    )
    start = streams.resume_point(after, last_event_id) or 0
    return streams.response(streams.event_stream(request, svc, flt, start))
