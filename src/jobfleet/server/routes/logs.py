"""GET /v1/jobs/{id}/logs: a run's stdout or stderr, whole or followed live (SSE).

The worker stores each line with the time it was read in front (worker/logpump.py); plain
text leaves it out unless `timestamps=true`. Followed lines carry it as `time`. The log is
read from this server's disk, or from the chunks a remote worker shipped (server/runlogs.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from jobfleet.errors import NotFound
from jobfleet.server import streams
from jobfleet.server.deps import Services, Svc
from jobfleet.server.permissions import Principal, Verb, require
from jobfleet.server.runlogs import RunLogs
from jobfleet.worker.logpump import split_stamp, strip_timestamps

router = APIRouter(prefix="/v1", tags=["logs"])
Stream = Literal["stdout", "stderr"]
MAX_TEXT = 16 * 2**20


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


@router.get(
    "/jobs/{job_id}/logs",
    summary="A run's output",
    response_model=None,
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "The log as text; with `follow=true`, server-sent events: one `log` "
            'message per line (`{"line": ..., "time": ...}`) as it is written, then `end` '
            '(`{"state": ...}`) once the run is over; `: ping` comments keep it open',
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    },
)
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
    return streams.response(_follow(request, svc, job_id, run, stream))


async def _follow(
    request: Request, svc: Services, job_id: str, run: str | None, stream: Stream
) -> AsyncIterator[str]:
    """One `log` message per line as it is written; `end` once the run is over and every line
    was sent (server/streams.py follows the log)."""
    yield ": following\n\n"
    pending = b""
    async for item in streams.log_feed(request, svc, job_id, run, stream, 0):
        if item.kind == "data":
            *lines, pending = (pending + item.data).split(b"\n")
            if lines:
                yield "".join(streams.sse(None, "log", _line(ln)) for ln in lines)
        elif item.kind == "end":
            if pending:
                yield streams.sse(None, "log", _line(pending))
            yield streams.sse(None, "end", {"state": item.state})
        elif item.kind == "ping":
            yield streams.PING


def _line(raw: bytes) -> dict[str, str | None]:
    when, text = split_stamp(raw.decode(errors="replace"))
    return {"line": text, "time": when}
