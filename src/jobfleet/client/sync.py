"""The blocking shells over the SDK's core (`client/core.py`), on `httpx.Client`.

`Client` answers with typed models (`Job`, `Event`, ...); `JsonClient` is the same API answering
with the server's JSON (dicts), which the CLI prints. Both are one class, `SyncClient`, with a
different `Codec`: every method below only sends the `Call` the core builds and converts the
answer. `AsyncClient` (`client/aio.py`) is the same surface for asyncio.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from types import TracebackType
from typing import Any, Generic, Self

import httpx

from jobfleet.client.core import (
    JSON,
    TERMINAL_STATES,
    TYPED,
    BaseClient,
    Call,
    Codec,
    EntryT,
    EventResume,
    EventT,
    JobT,
    Json,
    JsonList,
    PageT,
    Params,
    R,
    RequestFailed,
    ServerUnreachable,
    SpecLike,
    WaitTimeout,
    calls,
    deadline_after,
    ended,
    error_from_response,
    format_loc,
    items,
    job_spec,
    job_specs,
    last_event_id,
    log_follow,
    params,
    transport_error,
    waited_for,
)
from jobfleet.client.models import Event, HistoryEntry, Job, JobPage
from jobfleet.client.sse import iter_lines
from jobfleet.errors import ServiceUnavailable

__all__ = [
    "TERMINAL_STATES",
    "Client",
    "JsonClient",
    "RequestFailed",
    "ServerUnreachable",
    "SyncClient",
    "WaitTimeout",
    "error_from_response",
    "format_loc",
]


class SyncClient(BaseClient, Generic[JobT, PageT, EventT, EntryT]):
    """A connection to one jobfleet server (see `Client`); `_codec` shapes the answers."""

    _codec: Codec[JobT, PageT, EventT, EntryT]

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(server, token, timeout)
        self._http = httpx.Client(**self._http_options(), transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- jobs ---------------------------------------------------------------------------------

    def submit(self, spec: SpecLike = None, /, **fields: Any) -> JobT:
        """Submit one job: a command and keyword arguments, or a spec (a dict or `JobSpec`).

        `submit(["python", "train.py"], cpu=2, memory="4Gi", queue="ml")`; keywords are the
        fields of the job spec, plus `cpu`, `memory` and `gpu` for its resources.
        """
        return self._codec.job(self._send(calls.submit(job_spec(spec, fields))))

    def submit_many(self, specs: Sequence[Mapping[str, Any]]) -> builtins.list[JobT]:
        """Submit a batch in one request, all or nothing; the jobs in the order given."""
        if not specs:
            return []
        return [self._codec.job(j) for j in self._send(calls.submit_many(job_specs(specs)))]

    def get(self, job_id: str) -> JobT:
        return self._codec.job(self._send(calls.get(job_id)))

    def list(
        self,
        queue: str | None = None,
        job_set: str | None = None,
        state: str | None = None,
        label: str | Sequence[str] | None = None,
        q: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        array_id: str | None = None,
        schedule: str | None = None,
    ) -> PageT:
        """One page, newest first (`items`, `next_cursor`: pass it as `cursor` for the next).
        `array_id` and `schedule` narrow it to one job array's or one schedule's jobs."""
        call = calls.list(queue, job_set, state, label, q, limit, cursor, array_id, schedule)
        return self._codec.page(self._send(call))

    def iter_jobs(
        self,
        queue: str | None = None,
        job_set: str | None = None,
        state: str | None = None,
        label: str | Sequence[str] | None = None,
        q: str | None = None,
        page_size: int = 1000,
        *,
        array_id: str | None = None,
        schedule: str | None = None,
    ) -> Iterator[JobT]:
        """Every matching job, fetching page after page as you iterate."""
        cursor: str | None = None
        while True:
            call = calls.list(
                queue, job_set, state, label, q, page_size, cursor, array_id, schedule
            )
            page = self._send(call)
            for job in items(page):
                yield self._codec.job(job)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: str, reason: str | None = None) -> JobT:
        return self._codec.job(self._send(calls.cancel(job_id, reason)))

    def cancel_job_set(
        self, queue: str, job_set: str, states: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Cancel a job set; {"cancelled": n, "cancel_requested": n}."""
        return self._send(calls.cancel_job_set(queue, job_set, states))

    def reprioritize(self, job_id: str, priority: int) -> JobT:
        return self._codec.job(self._send(calls.reprioritize(job_id, priority)))

    def reprioritize_job_set(self, queue: str, job_set: str, priority: int) -> dict[str, int]:
        """Set the priority of every live job of a job set; {"reprioritized": n}."""
        return self._send(calls.reprioritize_job_set(queue, job_set, priority))

    def preempt(self, job_id: str) -> JobT:
        """Ask for the job's run to be stopped; by default the job is requeued, not counted."""
        return self._codec.job(self._send(calls.preempt(job_id)))

    def retry(self, job_id: str) -> JobT:
        """Submit a finished job again as a new job (its `retry_of` names this one)."""
        return self._codec.job(self._send(calls.retry(job_id)))

    def wait(self, job_id: str, timeout: float | None = None) -> JobT:
        """The job once it is terminal; `WaitTimeout` after `timeout` seconds."""
        deadline = deadline_after(timeout)
        job = self._send(calls.get(job_id))
        if job.get("state") not in TERMINAL_STATES:
            past = self._send(calls.job_events(job_id))
            if not ended(past):
                resume = self._events_resume(params(job_id=job_id), last_event_id(past), deadline)
                with closing(self._follow(resume)) as stream:
                    next(e for e in stream if waited_for(e, job_id))
            job = self._send(calls.get(job_id))
        return self._codec.job(job)

    def job_events(self, job_id: str) -> builtins.list[EventT]:
        """The job's events so far, oldest first."""
        return [self._codec.event(e) for e in self._send(calls.job_events(job_id))]

    def history(self, job_id: str) -> builtins.list[EntryT]:
        """The job's timeline: one entry per state it went through."""
        return [self._codec.entry(e) for e in self._send(calls.history(job_id))]

    def errors(self, job_id: str, limit: int = 100, cursor: str | None = None) -> Json:
        """One page of the job's failures, newest first: {"items": [...], "next_cursor": ...}.

        Each item: run_id, attempt, worker, time, event, failure."""
        return self._send(calls.errors(job_id, limit, cursor))

    def iter_errors(self, job_id: str, page_size: int = 100) -> Iterator[Json]:
        """Every failure of every attempt of the job, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = self.errors(job_id, limit=page_size, cursor=cursor)
            yield from items(page)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def checkpoints(self, job_id: str) -> JsonList:
        """The job's checkpoints (the latest of each run), newest first."""
        return self._send(calls.checkpoints(job_id))

    # -- streams ------------------------------------------------------------------------------

    def events(
        self,
        *,
        job_set: str | Sequence[str] | None = None,
        queue: str | Sequence[str] | None = None,
        job_id: str | None = None,
        type: str | Sequence[str] | None = None,
        after: int | None = None,
    ) -> Generator[EventT, None, None]:
        """Follow the event stream: every matching event after id `after`, in id order.

        Several job sets (or queues, or types) may be given at once. Without `after` the
        server starts at the first event it still has. A dropped connection is resumed with
        the last id seen, so no event is missed or repeated. The iterator never ends by
        itself; break out of it (and `close()` it, or use `contextlib.closing`, to drop the
        connection at once). For one job's events so far, see `job_events`.
        """
        query = params(job_id=job_id, queue=queue, job_set=job_set, type=type)
        with closing(self._follow(self._events_resume(query, after))) as stream:
            for data in stream:
                yield self._codec.event(data)

    def logs(
        self, job_id: str, stream: str = "stdout", run: str | None = None, timestamps: bool = False
    ) -> str:
        """A run's output so far (the latest run unless `run`); with `timestamps`, each line
        after the time it was written."""
        return self._send(calls.logs(job_id, stream, run, timestamps))

    def follow_logs(
        self, job_id: str, stream: str = "stdout", run: str | None = None
    ) -> Iterator[str]:
        """Lines of the run's output as they are written; ends when the run is over."""
        follow = log_follow(job_id, stream, run)
        while True:
            query, headers = follow.connect()
            broke: str | None = None
            try:
                with self._stream(follow.path, query, headers, None) as response:
                    for line in iter_lines(response.iter_bytes()):
                        text = follow.feed(line)
                        if follow.ended:
                            return
                        if text is not None:
                            yield text
            except httpx.TransportError as exc:
                broke = f"the log stream broke off: {exc!r}"
            time.sleep(follow.broke(broke))

    # -- queues, the fleet, principals ---------------------------------------------------------

    def list_queues(self) -> JsonList:
        return self._send(calls.list_queues())

    def get_queue(self, name: str) -> Json:
        return self._send(calls.get_queue(name))

    def create_queue(self, name: str, **fields: Any) -> Json:
        """Create a queue: weight, max_running_jobs, max_resources, retry."""
        return self._send(calls.create_queue(name, fields))

    def update_queue(self, name: str, **changes: Any) -> Json:
        """Change some fields of a queue; None removes a limit."""
        return self._send(calls.update_queue(name, changes))

    def delete_queue(self, name: str) -> None:
        """Delete a queue; refused (409) while it holds jobs that have not ended."""
        self._send(calls.delete_queue(name))

    def workers(self) -> JsonList:
        """Every registered worker: shard, state, capacity, allocation, last heartbeat."""
        return self._send(calls.workers())

    def shards(self) -> JsonList:
        """Every shard: labels, live workers, capacity, allocation, jobs in its queue."""
        return self._send(calls.shards())

    def create_token(
        self,
        name: str,
        queues: Sequence[str] = (),
        verbs: Sequence[str] = (),
        *,
        admin: bool = False,
        worker: bool = False,
        worker_name: str | None = None,
    ) -> Json:
        """A new token of principal `name`: {"id", "token" (shown once), "principal"}.
        `worker_name` binds a worker token to that worker name."""
        return self._send(calls.create_token(name, queues, verbs, admin, worker, worker_name))

    def principals(self) -> JsonList:
        return self._send(calls.principals())

    def revoke_token(self, token_id: str) -> Json:
        return self._send(calls.revoke_token(token_id))

    def whoami(self) -> Json:
        """The principal of this client's token: name, kind, admin, grants."""
        return self._send(calls.whoami())

    # -- arrays, schedules, usage, operating workers (PRODUCT.md §14) --------------------------

    def submit_array(
        self, spec: SpecLike, size: int, max_parallel: int | None = None, **fields: Any
    ) -> tuple[str, builtins.list[JobT]]:
        """Submit `size` jobs of one spec (indexes 0..size-1), at most `max_parallel` running
        at once; returns (the array id, its jobs by index)."""
        call = calls.submit_array(job_spec(spec, fields, "submit_array()"), size, max_parallel)
        answer = self._send(call)
        return str(answer["array_id"]), [self._codec.job(j) for j in items(answer, "jobs")]

    def get_array(self, array_id: str) -> Json:
        """{"array_id", "size", "max_parallel", "counts": {state: n}, "jobs_url", ...}."""
        return self._send(calls.get_array(array_id))

    def cancel_array(self, array_id: str, reason: str | None = None) -> Json:
        """Cancel the array's unfinished jobs; {"cancelled": n, "cancel_requested": n}."""
        return self._send(calls.cancel_array(array_id, reason))

    def cordon(self, worker: str) -> Json:
        """No new leases for the worker; its running jobs go on."""
        return self._send(calls.cordon(worker))

    def uncordon(self, worker: str) -> Json:
        return self._send(calls.uncordon(worker))

    def drain(self, worker: str, timeout: str | float | None = None) -> Json:
        """Cordon, then evict what still runs after `timeout` (retried elsewhere, uncounted)."""
        return self._send(calls.drain(worker, timeout))

    def usage(
        self, since: str | None = None, until: str | None = None, group_by: str = "queue"
    ) -> JsonList:
        """Resources times time of runs in a window, per group (§14.3)."""
        return self._send(calls.usage(since, until, group_by))

    def create_schedule(self, name: str, job: Mapping[str, Any], **fields: Any) -> Json:
        """cron or every, timezone, overlap, catchup, paused (§14.2)."""
        return self._send(calls.create_schedule(name, job, fields))

    def schedules(self) -> JsonList:
        return self._send(calls.schedules())

    def get_schedule(self, name: str) -> Json:
        return self._send(calls.get_schedule(name))

    def update_schedule(self, name: str, **changes: Any) -> Json:
        return self._send(calls.update_schedule(name, changes))

    def delete_schedule(self, name: str) -> None:
        self._send(calls.delete_schedule(name))

    def schedule_action(self, name: str, action: str) -> Json:
        """pause, resume or trigger (trigger answers the job it submitted)."""
        return self._send(calls.schedule_action(name, action))

    def pause_schedule(self, name: str) -> Json:
        return self._send(calls.schedule_action(name, "pause"))

    def resume_schedule(self, name: str) -> Json:
        return self._send(calls.schedule_action(name, "resume"))

    def trigger_schedule(self, name: str) -> JobT:
        """Submit the schedule's job now; the job."""
        return self._codec.job(self._send(calls.schedule_action(name, "trigger")))

    # -- I/O ----------------------------------------------------------------------------------

    def _send(self, call: Call[R]) -> R:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as exc:
            raise transport_error(self.server, exc) from exc
        if response.is_error:
            raise error_from_response(response)
        return call.decode(response)

    @contextmanager
    def _stream(
        self, path: str, query: Params, headers: dict[str, str], read: float | None
    ) -> Iterator[httpx.Response]:
        """An open SSE response (status checked); connect failures raise ServerUnreachable."""
        options = self._stream_options(headers, read)
        try:
            with self._http.stream("GET", path, params=query, **options) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                yield response
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(self.server) from exc

    def _follow(self, resume: EventResume) -> Generator[Json, None, None]:
        while True:
            query, headers, read = resume.connect()
            try:
                with self._stream("/v1/events", query, headers, read) as response:
                    resume.opened()
                    for line in iter_lines(response.iter_bytes()):
                        data = resume.feed(line)
                        if data is not None:
                            yield data
            except (ServerUnreachable, ServiceUnavailable):
                if resume.unreachable():
                    raise
            except httpx.TransportError:
                pass  # dropped mid-stream: resume after the last event seen
            time.sleep(resume.closed())


class JsonClient(SyncClient[Json, Json, Json, Json]):
    """A connection to one jobfleet server whose answers are the server's JSON objects.

    `server` and `token` default to `JOBFLEET_SERVER` / `JOBFLEET_TOKEN`, then to the profile
    saved by `jobfleet up`, then (server) to http://127.0.0.1:8360.
    """

    _codec = JSON

    def watch(
        self,
        job_id: str | None = None,
        queue: str | Sequence[str] | None = None,
        job_set: str | Sequence[str] | None = None,
        after: int | None = None,
        type: str | Sequence[str] | None = None,
    ) -> Generator[Json, None, None]:
        """The older name of `events` (the followed event stream)."""
        return self.events(job_id=job_id, queue=queue, job_set=job_set, after=after, type=type)


class Client(SyncClient[Job, JobPage, Event, HistoryEntry]):
    """A connection to one jobfleet server, answering with typed objects (`Job`, `Event`, ...).

    `server` and `token` default to `JOBFLEET_SERVER` / `JOBFLEET_TOKEN`, then to the profile
    saved by `jobfleet up`, then (server) to http://127.0.0.1:8360. Every error is a
    `jobfleet.JobfleetError`; `wait` raises `WaitTimeout` (also a `TimeoutError`).
    """

    _codec = TYPED
    _json: JsonClient | None = None

    @property
    def json(self) -> JsonClient:
        """The same connection, answering with the server's JSON (dicts)."""
        if self._json is None:
            view = JsonClient.__new__(JsonClient)
            BaseClient.__init__(view, self.server, self.token, self.timeout)
            view._http = self._http
            self._json = view
        return self._json
