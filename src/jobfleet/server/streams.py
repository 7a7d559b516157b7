"""Server-sent event streams, written once for the API and the dashboard.

Everything a stream needs lives here: the SSE framing (`sse`), the response headers, the
resume point (`Last-Event-ID` or `?after=`), keep-alives, and the two feeds — the lifecycle
events (`event_stream`) and a run's log followed live (`log_feed`). The API's routes
(`routes/events.py`, `routes/logs.py`) and the dashboard (`web/live.py`) only choose the
filter and the shape of each message.

Resume: an event stream starts after `Last-Event-ID` (sent by a reconnecting EventSource), else
after `?after=` (0: from the first event). The store commits events in id order
(store/base.py), so reading `id > last` again and again yields every event once, with no gap
and no duplicate.

Keep-alives: every stream sends a `: ping` comment after `sse_heartbeat` seconds without a
message, so proxies do not close an idle stream and a client notices a dead server.

Why not sse-starlette: its keep-alive runs as a task beside the generator, and a stream here is
a loop that already wakes on a notification or a poll; the idle check fits in that loop (one
clock read) and the whole framing is the one function below.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from jobfleet.errors import InvalidInput
from jobfleet.inputs import INT64_MAX
from jobfleet.lifecycle import JobState
from jobfleet.server.deps import Services
from jobfleet.server.runlogs import RunLogs
from jobfleet.store import EventFilter

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"
PING = ": ping\n\n"
Stream = Literal["stdout", "stderr"]
LOG_POLL = 0.2  # seconds between two reads of a live log that had nothing new
STATE_EVERY = 1.0  # seconds between two reads of the followed run's state
LOG_CHUNK = 256 * 1024
_LIVE = ("LEASED", "RUNNING")


def sse(event_id: int | None, event: str, data: object) -> str:
    """One SSE message: `id:` (when given), `event:`, and the data as one line of JSON."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def response(messages: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(messages, media_type=MEDIA_TYPE, headers=SSE_HEADERS)


def resume_point(after: int | None, last_event_id: str | None) -> int | None:
    """Where a stream starts: after `Last-Event-ID`, else after `after`; None if neither."""
    if last_event_id:
        try:
            value = int(last_event_id)
        except ValueError:
            raise InvalidInput(
                "Last-Event-ID must be an event id (an integer)",
                [{"loc": ["header", "last-event-id"], "msg": "not an integer"}],
            ) from None
        if not 0 <= value <= INT64_MAX:
            raise InvalidInput(
                f"Last-Event-ID must be an event id, from 0 to {INT64_MAX}",
                [{"loc": ["header", "last-event-id"], "msg": "out of range"}],
            )
        return value
    return after


class KeepAlive:
    """Says when an idle stream is due a `: ping` (every `interval` seconds of silence)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.since = time.monotonic()

    def sent(self) -> None:
        self.since = time.monotonic()

    def left(self) -> float:
        return self.interval - (time.monotonic() - self.since)

    def due(self) -> bool:
        if self.left() > 0:
            return False
        self.sent()
        return True


async def event_stream(
    request: Request, svc: Services, flt: EventFilter, after: int
) -> AsyncIterator[str]:
    """The lifecycle events after `after` that `flt` keeps, then live ones as they commit."""
    alive = KeepAlive(svc.settings.sse_heartbeat)
    last = after
    yield ": connected\n\n"
    while not await request.is_disconnected():
        batch = await run_in_threadpool(svc.store.events_after, last, flt, limit=1000)
        if batch:
            yield "".join(sse(e["id"], e["type"], e) for e in batch)
            last = batch[-1]["id"]
            alive.sent()
            continue
        if alive.due():
            yield PING
            continue
        # Events held back by a writer still committing (store/horizon.py) come soon.
        soon = 0.02 if svc.store.horizon.behind() else 1.0
        await svc.broadcaster.wait(min(soon, alive.left()))


@dataclass(frozen=True, slots=True)
class LogItem:
    """What `log_feed` yields: `run` (the run followed), `data` (complete lines, ending at
    byte `offset` of the stored log), `end` (the run or the job is over: `state`), `ping`."""

    kind: Literal["run", "data", "end", "ping"]
    run: str | None = None
    data: bytes = b""
    offset: int = 0
    state: str = ""


def complete_lines(chunk: bytes, whole: bool) -> bytes:
    """The complete lines of `chunk` (all of it if `whole`, or if it is one full chunk with no
    newline: a line that long is sent in pieces)."""
    cut = len(chunk) if whole else chunk.rfind(b"\n") + 1
    return chunk[:cut] if cut or len(chunk) < LOG_CHUNK else chunk


async def log_feed(
    request: Request, svc: Services, job_id: str, run: str | None, stream: Stream, offset: int
) -> AsyncIterator[LogItem]:
    """A run's log from byte `offset` on, as it is written, until the run is over.

    The run followed is `run`, else the job's latest (waiting for the job's first run); once
    the run is no longer LEASED or RUNNING, the rest is sent and then `end`. The log is read
    through server/runlogs.py: this disk's file, or the chunks a remote worker shipped.
    """
    logs = RunLogs(svc.files, svc.store)
    alive = KeepAlive(svc.settings.sse_heartbeat)
    run_id, state, checked = run, "?", 0.0
    while not await request.is_disconnected():
        if run_id is None or time.monotonic() - checked >= STATE_EVERY:
            found, state = await run_in_threadpool(svc.store.run_progress, job_id, run_id)
            checked = time.monotonic()
            if found is not None and found != run_id:
                offset = 0 if run_id is not None else offset
                run_id = found
                yield LogItem("run", run=run_id)
        if run_id is None:
            if JobState(state).terminal:
                yield LogItem("end", state=state)
                return
        else:
            over = state not in _LIVE
            chunk = await run_in_threadpool(logs.read_from, run_id, stream, offset, LOG_CHUNK)
            chunk = complete_lines(chunk, over)
            if chunk:
                offset += len(chunk)
                alive.sent()
                yield LogItem("data", run=run_id, data=chunk, offset=offset)
                continue
            if over:
                yield LogItem("end", run=run_id, state=state)
                return
        if alive.due():
            yield LogItem("ping")
        await asyncio.sleep(LOG_POLL)
