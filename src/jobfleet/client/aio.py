"""The SDK's `AsyncClient`: the surface of `Client`, on `httpx.AsyncClient`, for asyncio code.

Error mapping, parameter encoding and the event-stream resume rules are the sync client's
(`client/sync.py`); only the I/O differs.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import httpx

from jobfleet.client.models import Event, HistoryEntry, Job, JobPage
from jobfleet.client.profile import resolve
from jobfleet.client.sse import SSEParser, aiter_lines
from jobfleet.client.sync import (
    TERMINAL_STATES,
    Json,
    Params,
    RequestFailed,
    ServerUnreachable,
    _check_deadline,
    _event_data,
    _is_int,
    _items,
    _job_path,
    _log_line,
    _params,
    _read_timeout,
    _reconnect_delay,
    _seg,
    error_from_response,
)
from jobfleet.errors import ServiceUnavailable


class AsyncClient:
    """An asyncio connection to one jobfleet server (same defaults as `Client`)."""

    reconnect_window = 60.0  # how long `events` keeps trying to reach a vanished server

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server, self.token = resolve(server, token)
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._http = httpx.AsyncClient(
            base_url=self.server, headers=headers, timeout=timeout, transport=transport
        )

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

    def __repr__(self) -> str:
        return f"AsyncClient(server={self.server!r})"

    # -- jobs ---------------------------------------------------------------------------------

    async def submit(self, spec: Mapping[str, Any]) -> Job:
        job: Job = Job.parse(await self._json("POST", "/v1/jobs", json=dict(spec)))
        return job

    async def submit_many(self, specs: Sequence[Mapping[str, Any]]) -> builtins.list[Job]:
        if not specs:
            return []
        answer = await self._json("POST", "/v1/jobs", json={"jobs": [dict(s) for s in specs]})
        return [Job.parse(j) for j in _items(answer, "jobs")]

    async def get(self, job_id: str) -> Job:
        job: Job = Job.parse(await self._json("GET", _job_path(job_id)))
        return job

    async def list(
        self,
        queue: str | None = None,
        job_set: str | None = None,
        state: str | None = None,
        label: str | Sequence[str] | None = None,
        q: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        params = _params(queue=queue, job_set=job_set, state=state, label=label, q=q, cursor=cursor)
        params["limit"] = str(limit)
        page: JobPage = JobPage.parse(await self._json("GET", "/v1/jobs", params=params))
        return page

    async def iter_jobs(
        self,
        queue: str | None = None,
        job_set: str | None = None,
        state: str | None = None,
        label: str | Sequence[str] | None = None,
        q: str | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[Job]:
        """Every matching job, page after page."""
        cursor: str | None = None
        while True:
            page = await self.list(queue, job_set, state, label, q, page_size, cursor)
            for job in page.items:
                yield job
            cursor = page.next_cursor
            if not cursor:
                return

    async def cancel(self, job_id: str, reason: str | None = None) -> Job:
        body = {"reason": reason} if reason else None
        return await self._job("POST", f"{_job_path(job_id)}/cancel", json=body)

    async def cancel_job_set(
        self, queue: str, job_set: str, states: Sequence[str] | None = None
    ) -> dict[str, int]:
        path = f"/v1/job-sets/{_seg(queue)}/{_seg(job_set)}/cancel"
        body = {"states": [*states]} if states else None
        return {k: int(v) for k, v in (await self._json("POST", path, json=body)).items()}

    async def reprioritize(self, job_id: str, priority: int) -> Job:
        body = {"priority": priority}
        return await self._job("POST", f"{_job_path(job_id)}/reprioritize", json=body)

    async def preempt(self, job_id: str) -> Job:
        return await self._job("POST", f"{_job_path(job_id)}/preempt")

    async def retry(self, job_id: str) -> Job:
        return await self._job("POST", f"{_job_path(job_id)}/retry")

    async def job_events(self, job_id: str) -> builtins.list[Event]:
        answer = await self._json("GET", f"{_job_path(job_id)}/events")
        return [Event.parse(e) for e in _items(answer)]

    async def history(self, job_id: str) -> builtins.list[HistoryEntry]:
        answer = await self._json("GET", f"{_job_path(job_id)}/history")
        return [HistoryEntry.parse(e) for e in _items(answer)]

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it is terminal; `WaitTimeout` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = await self.get(job_id)
        if job.terminal:
            return job
        past = await self.job_events(job_id)
        if past and past[-1].state in TERMINAL_STATES:
            return await self.get(job_id)
        after = max((e.id for e in past), default=0)
        stream = self._follow(_params(job_id=job_id), after, deadline)
        try:
            async for event in stream:
                if event["job_id"] == job_id and event.get("state") in TERMINAL_STATES:
                    return await self.get(job_id)
        finally:
            await stream.aclose()
        raise AssertionError("unreachable: the event stream never ends")  # pragma: no cover

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
        params = _params(job_id=job_id, queue=queue, job_set=job_set, type=type)
        stream = self._follow(params, after, None)
        try:
            async for data in stream:
                yield Event.parse(data)
        finally:
            await stream.aclose()

    async def logs(self, job_id: str, stream: str = "stdout", run: str | None = None) -> str:
        params = _params(stream=stream, run=run)
        return (await self._request("GET", f"{_job_path(job_id)}/logs", params=params)).text

    async def follow_logs(
        self, job_id: str, stream: str = "stdout", run: str | None = None
    ) -> AsyncIterator[str]:
        """Lines of the run's output as they are written; ends when the run is over."""
        params = _params(stream=stream, run=run, follow="true")
        async with self._stream(f"{_job_path(job_id)}/logs", params, {}, None) as resp:
            parser = SSEParser()
            async for line in aiter_lines(resp.aiter_bytes()):
                event = parser.feed(line)
                if event is not None and event.event == "end":
                    return
                if event is not None and event.event == "log":
                    yield _log_line(event)
        raise RequestFailed("the log stream ended before the run was over")

    async def errors(self, job_id: str, limit: int = 100, cursor: str | None = None) -> Json:
        """One page of the job's failures, newest first: {"items": [...], "next_cursor": ...}."""
        params = _params(cursor=cursor)
        params["limit"] = str(limit)
        return await self._json("GET", f"{_job_path(job_id)}/errors", params=params)

    async def iter_errors(self, job_id: str, page_size: int = 100) -> AsyncIterator[Json]:
        """Every failure of every attempt of the job, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = await self.errors(job_id, limit=page_size, cursor=cursor)
            for item in _items(page):
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def checkpoints(self, job_id: str) -> builtins.list[Json]:
        """The job's checkpoints (the latest of each run), newest first."""
        return _items(await self._json("GET", f"{_job_path(job_id)}/checkpoints"))

    async def whoami(self) -> Json:
        return await self._json("GET", "/v1/auth/whoami")

    # -- arrays, schedules, usage, operating workers (§14) --------------------------------------

    async def submit_array(
        self, spec: Mapping[str, Any], size: int, max_parallel: int | None = None
    ) -> tuple[str, builtins.list[Job]]:
        """Submit `size` jobs of one spec; returns (array id, its jobs by index)."""
        array = {"size": size, **({"max_parallel": max_parallel} if max_parallel else {})}
        answer = await self._json("POST", "/v1/jobs", json={**dict(spec), "array": array})
        return answer["array_id"], [Job.parse(j) for j in answer["jobs"]]

    async def get_array(self, array_id: str) -> Json:
        return await self._json("GET", f"/v1/arrays/{_seg(array_id)}")

    async def cancel_array(self, array_id: str, reason: str | None = None) -> Json:
        body = {"reason": reason} if reason else None
        return await self._json("POST", f"/v1/arrays/{_seg(array_id)}/cancel", json=body)

    async def cordon(self, worker: str) -> Json:
        return await self._json("POST", f"/v1/workers/{_seg(worker)}/cordon")

    async def uncordon(self, worker: str) -> Json:
        return await self._json("POST", f"/v1/workers/{_seg(worker)}/uncordon")

    async def drain(self, worker: str, timeout: str | float | None = None) -> Json:
        body = {"timeout": timeout} if timeout is not None else None
        return await self._json("POST", f"/v1/workers/{_seg(worker)}/drain", json=body)

    async def usage(
        self, since: str | None = None, until: str | None = None, group_by: str = "queue"
    ) -> builtins.list[Json]:
        params = _params(since=since, until=until, group_by=group_by)
        return _items(await self._json("GET", "/v1/usage", params=params))

    async def create_schedule(self, name: str, job: Mapping[str, Any], **fields: Any) -> Json:
        body = {"name": name, "job": dict(job), **fields}
        return await self._json("POST", "/v1/schedules", json=body)

    async def schedules(self) -> builtins.list[Json]:
        return _items(await self._json("GET", "/v1/schedules"))

    async def get_schedule(self, name: str) -> Json:
        return await self._json("GET", f"/v1/schedules/{_seg(name)}")

    async def update_schedule(self, name: str, **changes: Any) -> Json:
        return await self._json("PATCH", f"/v1/schedules/{_seg(name)}", json=changes)

    async def delete_schedule(self, name: str) -> None:
        await self._request("DELETE", f"/v1/schedules/{_seg(name)}")

    async def pause_schedule(self, name: str) -> Json:
        return await self._json("POST", f"/v1/schedules/{_seg(name)}/pause")

    async def resume_schedule(self, name: str) -> Json:
        return await self._json("POST", f"/v1/schedules/{_seg(name)}/resume")

    async def trigger_schedule(self, name: str) -> Job:
        return await self._job("POST", f"/v1/schedules/{_seg(name)}/trigger")

    # -- plumbing -----------------------------------------------------------------------------

    async def _follow(
        self, params: Params, after: int | None, deadline: float | None
    ) -> AsyncGenerator[Json, None]:
        """Events as dicts; reconnects after the last id seen (the rules of `JsonClient`)."""
        last, failures, retry_ms = after, 0, None
        down_since: float | None = None
        while True:
            query, headers = dict(params), {}
            if last is not None:
                query["after"] = headers["Last-Event-ID"] = str(last)
            received, parser = False, SSEParser()
            try:
                async with self._stream("/v1/events", query, headers, _read_timeout(deadline)) as r:
                    down_since = None
                    async for line in aiter_lines(r.aiter_bytes()):
                        received = True
                        _check_deadline(deadline)
                        event = parser.feed(line)
                        data = None if event is None else _event_data(event, last)
                        if data is not None:
                            last = int(data["id"]) if _is_int(data.get("id")) else last
                            yield data
            except (ServerUnreachable, ServiceUnavailable):
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > self.reconnect_window:
                    raise
            except httpx.TransportError:
                pass  # dropped mid-stream: resume from `last`
            _check_deadline(deadline)
            failures = 0 if received else failures + 1
            retry_ms = parser.retry if parser.retry is not None else retry_ms
            await asyncio.sleep(_reconnect_delay(failures, retry_ms, deadline))

    async def _request(
        self, method: str, path: str, *, params: Params | None = None, json: Any = None
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(self.server) from exc
        except httpx.TransportError as exc:
            raise RequestFailed(f"request to jobfleet at {self.server} failed: {exc!r}") from exc
        if response.is_error:
            raise error_from_response(response)
        return response

    async def _json(
        self, method: str, path: str, *, params: Params | None = None, json: Any = None
    ) -> Json:
        response = await self._request(method, path, params=params, json=json)
        try:
            body = response.json()
        except ValueError as exc:
            raise RequestFailed(f"{method} {path}: the server's answer is not JSON") from exc
        if not isinstance(body, dict):
            raise RequestFailed(f"{method} {path}: expected a JSON object from the server")
        return body

    async def _job(self, method: str, path: str, *, json: Any = None) -> Job:
        job: Job = Job.parse(await self._json(method, path, json=json))
        return job

    @asynccontextmanager
    async def _stream(
        self, path: str, params: Params, headers: dict[str, str], read: float | None
    ) -> AsyncIterator[httpx.Response]:
        timeout = httpx.Timeout(self.timeout, read=read)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **headers}
        try:
            async with self._http.stream(
                "GET", path, params=params, headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response)
                yield response
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(self.server) from exc
