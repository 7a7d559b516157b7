"""The SDK's `AsyncClient`: the surface of `Client`, on `httpx.AsyncClient`, for asyncio code.

A thin shell over the core (`client/core.py`), like the blocking one in `client/sync.py`: the
requests, the answers' parsing, the error mapping and the stream resume state are the core's;
only the I/O is here.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import httpx

from jobfleet.client.core import (
    TERMINAL_STATES,
    TYPED,
    BaseClient,
    Call,
    EventResume,
    Json,
    JsonList,
    Params,
    R,
    ServerUnreachable,
    SpecLike,
    calls,
    deadline_after,
    ended,
    error_from_response,
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
from jobfleet.client.sse import aiter_lines
from jobfleet.errors import ServiceUnavailable


class AsyncClient(BaseClient):
    """An asyncio connection to one jobfleet server (same defaults and methods as `Client`)."""

    _codec = TYPED

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(server, token, timeout)
        self._http = httpx.AsyncClient(**self._http_options(), transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- jobs ---------------------------------------------------------------------------------

    async def submit(self, spec: SpecLike = None, /, **fields: Any) -> Job:
        """Submit one job: a command and keyword arguments, or a spec (see `Client.submit`)."""
        return self._codec.job(await self._send(calls.submit(job_spec(spec, fields))))

    async def submit_many(self, specs: Sequence[Mapping[str, Any]]) -> builtins.list[Job]:
        if not specs:
            return []
        answer = await self._send(calls.submit_many(job_specs(specs)))
        return [self._codec.job(j) for j in answer]

    async def get(self, job_id: str) -> Job:
        return self._codec.job(await self._send(calls.get(job_id)))

    async def list(
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
    ) -> JobPage:
        call = calls.list(queue, job_set, state, label, q, limit, cursor, array_id, schedule)
        return self._codec.page(await self._send(call))

    async def iter_jobs(
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
    ) -> AsyncIterator[Job]:
        """Every matching job, page after page."""
        cursor: str | None = None
        while True:
            call = calls.list(
                queue, job_set, state, label, q, page_size, cursor, array_id, schedule
            )
            page = await self._send(call)
            for job in items(page):
                yield self._codec.job(job)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def cancel(self, job_id: str, reason: str | None = None) -> Job:
        return self._codec.job(await self._send(calls.cancel(job_id, reason)))

    async def cancel_job_set(
        self, queue: str, job_set: str, states: Sequence[str] | None = None
    ) -> dict[str, int]:
        return await self._send(calls.cancel_job_set(queue, job_set, states))

    async def reprioritize(self, job_id: str, priority: int) -> Job:
        return self._codec.job(await self._send(calls.reprioritize(job_id, priority)))

    async def reprioritize_job_set(self, queue: str, job_set: str, priority: int) -> dict[str, int]:
        return await self._send(calls.reprioritize_job_set(queue, job_set, priority))

    async def preempt(self, job_id: str) -> Job:
        return self._codec.job(await self._send(calls.preempt(job_id)))

    async def retry(self, job_id: str) -> Job:
        return self._codec.job(await self._send(calls.retry(job_id)))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it is terminal; `WaitTimeout` after `timeout` seconds."""
        deadline = deadline_after(timeout)
        job = await self._send(calls.get(job_id))
        if job.get("state") not in TERMINAL_STATES:
            past = await self._send(calls.job_events(job_id))
            if not ended(past):
                resume = self._events_resume(params(job_id=job_id), last_event_id(past), deadline)
                stream = self._follow(resume)
                try:
                    async for event in stream:
                        if waited_for(event, job_id):
                            break
                finally:
                    await stream.aclose()
            job = await self._send(calls.get(job_id))
        return self._codec.job(job)

    async def job_events(self, job_id: str) -> builtins.list[Event]:
        return [self._codec.event(e) for e in await self._send(calls.job_events(job_id))]

    async def history(self, job_id: str) -> builtins.list[HistoryEntry]:
        return [self._codec.entry(e) for e in await self._send(calls.history(job_id))]

    async def errors(self, job_id: str, limit: int = 100, cursor: str | None = None) -> Json:
        """One page of the job's failures, newest first: {"items": [...], "next_cursor": ...}."""
        return await self._send(calls.errors(job_id, limit, cursor))

    async def iter_errors(self, job_id: str, page_size: int = 100) -> AsyncIterator[Json]:
        """Every failure of every attempt of the job, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = await self.errors(job_id, limit=page_size, cursor=cursor)
            for item in items(page):
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def checkpoints(self, job_id: str) -> JsonList:
        """The job's checkpoints (the latest of each run), newest first."""
        return await self._send(calls.checkpoints(job_id))

    # -- streams ------------------------------------------------------------------------------

    async def events(
        self,
        *,
        job_set: str | Sequence[str] | None = None,
        queue: str | Sequence[str] | None = None,
        job_id: str | None = None,
        type: str | Sequence[str] | None = None,
        after: int | None = None,
    ) -> AsyncIterator[Event]:
        """Follow the event stream (see `Client.events`): resumes after a dropped connection."""
        query = params(job_id=job_id, queue=queue, job_set=job_set, type=type)
        stream = self._follow(self._events_resume(query, after))
        try:
            async for data in stream:
                yield self._codec.event(data)
        finally:
            await stream.aclose()

    async def logs(
        self, job_id: str, stream: str = "stdout", run: str | None = None, timestamps: bool = False
    ) -> str:
        return await self._send(calls.logs(job_id, stream, run, timestamps))

    async def follow_logs(
        self, job_id: str, stream: str = "stdout", run: str | None = None
    ) -> AsyncIterator[str]:
        """Lines of the run's output as they are written; ends when the run is over."""
        follow = log_follow(job_id, stream, run)
        while True:
            query, headers = follow.connect()
            broke: str | None = None
            try:
                async with self._stream(follow.path, query, headers, None) as response:
                    async for line in aiter_lines(response.aiter_bytes()):
                        text = follow.feed(line)
                        if follow.ended:
                            return
                        if text is not None:
                            yield text
            except httpx.TransportError as exc:
                broke = f"the log stream broke off: {exc!r}"
            await asyncio.sleep(follow.broke(broke))

    # -- queues, the fleet, principals ---------------------------------------------------------

    async def list_queues(self) -> JsonList:
        return await self._send(calls.list_queues())

    async def get_queue(self, name: str) -> Json:
        return await self._send(calls.get_queue(name))

    async def create_queue(self, name: str, **fields: Any) -> Json:
        return await self._send(calls.create_queue(name, fields))

    async def update_queue(self, name: str, **changes: Any) -> Json:
        return await self._send(calls.update_queue(name, changes))

    async def delete_queue(self, name: str) -> None:
        await self._send(calls.delete_queue(name))

    async def workers(self) -> JsonList:
        return await self._send(calls.workers())

    async def shards(self) -> JsonList:
        return await self._send(calls.shards())

    async def create_token(
        self,
        name: str,
        queues: Sequence[str] = (),
        verbs: Sequence[str] = (),
        *,
        admin: bool = False,
        worker: bool = False,
        worker_name: str | None = None,
    ) -> Json:
        return await self._send(calls.create_token(name, queues, verbs, admin, worker, worker_name))

    async def principals(self) -> JsonList:
        return await self._send(calls.principals())

    async def revoke_token(self, token_id: str) -> Json:
        return await self._send(calls.revoke_token(token_id))

    async def whoami(self) -> Json:
        return await self._send(calls.whoami())

    # -- arrays, schedules, usage, operating workers (PRODUCT.md §14) --------------------------

    async def submit_array(
        self, spec: SpecLike, size: int, max_parallel: int | None = None, **fields: Any
    ) -> tuple[str, builtins.list[Job]]:
        """Submit `size` jobs of one spec; returns (array id, its jobs by index)."""
        call = calls.submit_array(job_spec(spec, fields, "submit_array()"), size, max_parallel)
        answer = await self._send(call)
        return str(answer["array_id"]), [self._codec.job(j) for j in items(answer, "jobs")]

    async def get_array(self, array_id: str) -> Json:
        return await self._send(calls.get_array(array_id))

    async def cancel_array(self, array_id: str, reason: str | None = None) -> Json:
        return await self._send(calls.cancel_array(array_id, reason))

    async def cordon(self, worker: str) -> Json:
        return await self._send(calls.cordon(worker))

    async def uncordon(self, worker: str) -> Json:
        return await self._send(calls.uncordon(worker))

    async def drain(self, worker: str, timeout: str | float | None = None) -> Json:
        return await self._send(calls.drain(worker, timeout))

    async def usage(
        self, since: str | None = None, until: str | None = None, group_by: str = "queue"
    ) -> JsonList:
        return await self._send(calls.usage(since, until, group_by))

    async def create_schedule(self, name: str, job: Mapping[str, Any], **fields: Any) -> Json:
        return await self._send(calls.create_schedule(name, job, fields))

    async def schedules(self) -> JsonList:
        return await self._send(calls.schedules())

    async def get_schedule(self, name: str) -> Json:
        return await self._send(calls.get_schedule(name))

    async def update_schedule(self, name: str, **changes: Any) -> Json:
        return await self._send(calls.update_schedule(name, changes))

    async def delete_schedule(self, name: str) -> None:
        await self._send(calls.delete_schedule(name))

    async def schedule_action(self, name: str, action: str) -> Json:
        return await self._send(calls.schedule_action(name, action))

    async def pause_schedule(self, name: str) -> Json:
        return await self._send(calls.schedule_action(name, "pause"))

    async def resume_schedule(self, name: str) -> Json:
        return await self._send(calls.schedule_action(name, "resume"))

    async def trigger_schedule(self, name: str) -> Job:
        return self._codec.job(await self._send(calls.schedule_action(name, "trigger")))

    # -- I/O ----------------------------------------------------------------------------------

    async def _send(self, call: Call[R]) -> R:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as exc:
            raise transport_error(self.server, exc) from exc
        if response.is_error:
            raise error_from_response(response)
        return call.decode(response)

    @asynccontextmanager
    async def _stream(
        self, path: str, query: Params, headers: dict[str, str], read: float | None
    ) -> AsyncIterator[httpx.Response]:
        options = self._stream_options(headers, read)
        try:
            async with self._http.stream("GET", path, params=query, **options) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response)
                yield response
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(self.server) from exc

    async def _follow(self, resume: EventResume) -> AsyncGenerator[Json, None]:
        while True:
            query, headers, read = resume.connect()
            try:
                async with self._stream("/v1/events", query, headers, read) as response:
                    resume.opened()
                    async for line in aiter_lines(response.aiter_bytes()):
                        data = resume.feed(line)
                        if data is not None:
                            yield data
            except (ServerUnreachable, ServiceUnavailable):
                if resume.unreachable():
                    raise
            except httpx.TransportError:
                pass  # dropped mid-stream: resume after the last event seen
            await asyncio.sleep(resume.closed())
