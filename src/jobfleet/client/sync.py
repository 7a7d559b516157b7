"""The synchronous HTTP client: `JsonClient`, over the HTTP API of PRODUCT.md §12.

`JsonClient` returns the server's JSON as is (dicts); the CLI prints that. The SDK's `Client`
(`client/typed.py`) wraps it and returns typed models. Every error it raises is a
`jobfleet.errors.JobfleetError`: problem+json answers map to the class
of their status, and a server that cannot be reached raises `ServerUnreachable`.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from jobfleet.client.profile import resolve
from jobfleet.client.sse import SSEEvent, SSEParser, iter_lines
from jobfleet.errors import (
    Conflict,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    JobfleetError,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)

Json = dict[str, Any]
JsonList = list[dict[str, Any]]
Params = dict[str, str | list[str]]

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "PREEMPTED"})
STREAM_READ_TIMEOUT = 45.0  # the server sends a heartbeat at least every 15 s
MAX_RECONNECT_DELAY = 5.0


class ServerUnreachable(JobfleetError):
    """No connection could be made to the server."""

    status = 503
    title = "Server unreachable"

    def __init__(self, server: str) -> None:
        super().__init__(
            f"cannot reach jobfleet at {server}: is `jobfleet up` running? "
            "(set --server or JOBFLEET_SERVER)"
        )
        self.server = server


class RequestFailed(JobfleetError):
    """The connection was made but the exchange failed (timeout, reset, malformed answer)."""

    status = 502
    title = "Request failed"


class WaitTimeout(JobfleetError, TimeoutError):
    """`wait` ran out of time before the job reached a terminal state."""

    status = 504
    title = "Timed out"


_STATUS_CLASSES: dict[int, type[JobfleetError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    502: ServiceUnavailable,  # from a proxy in front of a restarting server
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}


class JsonClient:
    """A connection to one jobfleet server; answers are the server's JSON objects.

    `server` and `token` default to `JOBFLEET_SERVER` / `JOBFLEET_TOKEN`, then to the profile
    saved by `jobfleet up`, then (server) to http://127.0.0.1:8360.
    """

    reconnect_window = 60.0  # how long `watch` keeps trying to reconnect to a vanished server

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server, self.token = resolve(server, token)
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._http = httpx.Client(
            base_url=self.server, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JsonClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server={self.server!r})"

    # -- jobs ---------------------------------------------------------------------------------

    def submit(self, spec: Mapping[str, Any]) -> Json:
        """Submit one job spec; returns the job."""
        return self._json("POST", "/v1/jobs", json=dict(spec))

    def submit_many(self, specs: Sequence[Mapping[str, Any]]) -> JsonList:
        """Submit a batch in one request; returns the jobs in the order given."""
        if not specs:
            return []
        answer = self._json("POST", "/v1/jobs", json={"jobs": [dict(s) for s in specs]})
        return _items(answer, "jobs")

    def get(self, job_id: str) -> Json:
        return self._json("GET", _job_path(job_id))

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
    ) -> Json:
        """One page: {"items": [job, ...], "next_cursor": str | None}."""
        params = _params(queue=queue, job_set=job_set, state=state, label=label, q=q, cursor=cursor)
        params.update(_params(array_id=array_id, schedule=schedule))
        params["limit"] = str(limit)
        return self._json("GET", "/v1/jobs", params=params)

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
    ) -> Iterator[Json]:
        """Every matching job, page after page."""
        cursor: str | None = None
        while True:
            page = self.list(
                queue,
                job_set,
                state,
                label,
                q,
                limit=page_size,
                cursor=cursor,
                array_id=array_id,
                schedule=schedule,
            )
            yield from _items(page)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: str, reason: str | None = None) -> Json:
        body = {"reason": reason} if reason else None
        return self._json("POST", f"{_job_path(job_id)}/cancel", json=body)

    def cancel_job_set(self, queue: str, job_set: str, states: Sequence[str] | None = None) -> Json:
        """Cancel a job set; returns {"cancelled": n, "cancel_requested": n}."""
        path = f"/v1/job-sets/{_seg(queue)}/{_seg(job_set)}/cancel"
        body = {"states": [*states]} if states else None
        return self._json("POST", path, json=body)

    def reprioritize(self, job_id: str, priority: int) -> Json:
        return self._json("POST", f"{_job_path(job_id)}/reprioritize", json={"priority": priority})

    def reprioritize_job_set(self, queue: str, job_set: str, priority: int) -> Json:
        """Set the priority of every live job of a job set; returns {"reprioritized": n}."""
        path = f"/v1/job-sets/{_seg(queue)}/{_seg(job_set)}/reprioritize"
        return self._json("POST", path, json={"priority": priority})

    # -- queues -------------------------------------------------------------------------------

    def list_queues(self) -> JsonList:
        return _items(self._json("GET", "/v1/queues"))

    def get_queue(self, name: str) -> Json:
        return self._json("GET", f"/v1/queues/{_seg(name)}")

    def create_queue(self, name: str, **fields: Any) -> Json:
        """Create a queue: weight, max_running_jobs, max_resources, retry."""
        return self._json("POST", "/v1/queues", json={"name": name, **fields})

    def update_queue(self, name: str, **changes: Any) -> Json:
        """Change some fields of a queue; None removes a limit."""
        return self._json("PATCH", f"/v1/queues/{_seg(name)}", json=changes)

    def delete_queue(self, name: str) -> None:
        """Delete a queue; refused (409) while it holds jobs that have not ended."""
        self._request("DELETE", f"/v1/queues/{_seg(name)}")

    def preempt(self, job_id: str) -> Json:
        return self._json("POST", f"{_job_path(job_id)}/preempt")

    def retry(self, job_id: str) -> Json:
        """Submit a terminal job again as a new job (its `retry_of` names this one)."""
        return self._json("POST", f"{_job_path(job_id)}/retry")

    def events(self, job_id: str) -> JsonList:
        return _items(self._json("GET", f"{_job_path(job_id)}/events"))

    def history(self, job_id: str) -> JsonList:
        return _items(self._json("GET", f"{_job_path(job_id)}/history"))

    def errors(self, job_id: str, limit: int = 100, cursor: str | None = None) -> Json:
        """One page of the job's failures, newest first: {"items": [...], "next_cursor": ...}.

        Each item: run_id, attempt, worker, time, event, failure."""
        params = _params(cursor=cursor)
        params["limit"] = str(limit)
        return self._json("GET", f"{_job_path(job_id)}/errors", params=params)

    def iter_errors(self, job_id: str, page_size: int = 100) -> Iterator[Json]:
        """Every failure of every attempt of the job, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = self.errors(job_id, limit=page_size, cursor=cursor)
            yield from _items(page)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def checkpoints(self, job_id: str) -> JsonList:
        """The job's checkpoints (the latest of each run), newest first."""
        return _items(self._json("GET", f"{_job_path(job_id)}/checkpoints"))

    # -- the fleet ----------------------------------------------------------------------------

    def workers(self) -> JsonList:
        """Every registered worker: shard, state, capacity, allocation, last heartbeat."""
        return _items(self._json("GET", "/v1/workers"))

    def shards(self) -> JsonList:
        """Every shard: labels, live workers, capacity, allocation, jobs in its queue."""
        return _items(self._json("GET", "/v1/shards"))

    # -- logs ---------------------------------------------------------------------------------

    def logs(
        self, job_id: str, stream: str = "stdout", run: str | None = None, timestamps: bool = False
    ) -> str:
        """The run's output; with `timestamps`, each line after the time it was written."""
        params = _params(stream=stream, run=run, timestamps="true" if timestamps else None)
        return self._request("GET", f"{_job_path(job_id)}/logs", params=params).text

    def follow_logs(
        self, job_id: str, stream: str = "stdout", run: str | None = None
    ) -> Iterator[str]:
        """Lines of the run's log as they are written; ends when the run is over.

        A log stream may stay silent while the job computes, so it has no read timeout. If the
        connection drops and the server numbered its lines (`id:`), it resumes after the last.
        """
        params = _params(stream=stream, run=run, follow="true")
        resume: str | None = None
        while True:
            parser = SSEParser(last_event_id=resume)
            headers = {"Last-Event-ID": resume} if resume else {}
            try:
                with self._stream(f"{_job_path(job_id)}/logs", params, headers, None) as resp:
                    for line in iter_lines(resp.iter_bytes()):
                        event = parser.feed(line)
                        if event is not None and event.event == "end":
                            return
                        if event is not None and event.event == "log":
                            yield _log_line(event)
                broke = "the log stream ended before the run was over"
            except httpx.TransportError as exc:
                broke = f"the log stream broke off: {exc!r}"
            if not parser.last_event_id:
                raise RequestFailed(broke)
            resume = parser.last_event_id
            time.sleep(0.2)

    # -- events -------------------------------------------------------------------------------

    def watch(
        self,
        job_id: str | None = None,
        queue: str | Sequence[str] | None = None,
        job_set: str | Sequence[str] | None = None,
        after: int | None = None,
        type: str | Sequence[str] | None = None,
    ) -> Generator[Json, None, None]:
        """Events matching the filters, in id order, from just after event id `after`.

        Without `after` the server picks the start (jobfleet's starts at the first event it
        still has). A dropped connection is resumed with `Last-Event-ID` set to the last id
        seen, so no event is missed or yielded twice. The iterator never ends by itself: break
        out of it (and `close()` it, or use `contextlib.closing`, to drop the connection).
        """
        params = _params(job_id=job_id, queue=queue, job_set=job_set, type=type)
        return self._watch(params, after, deadline=None)

    # -- principals and tokens (admin) -----------------------------------------------------------

    def create_token(
        self,
        name: str,
        queues: Sequence[str] = (),
        verbs: Sequence[str] = (),
        *,
        admin: bool = False,
        worker: bool = False,
    ) -> Json:
        """A new token of principal `name`: {"id", "token" (shown once), "principal"}."""
        body = {"name": name, "queues": [*queues], "verbs": [*verbs], "admin": admin}
        return self._json("POST", "/v1/auth/tokens", json={**body, "worker": worker})

    def principals(self) -> JsonList:
        return _items(self._json("GET", "/v1/auth/principals"))

    def revoke_token(self, token_id: str) -> Json:
        return self._json("DELETE", f"/v1/auth/tokens/{_seg(token_id)}")

    def whoami(self) -> Json:
        return self._json("GET", "/v1/auth/whoami")

    # -- arrays, schedules, usage, operating workers (PRODUCT.md §14) --------------------------

    def submit_array(
        self, spec: Mapping[str, Any], size: int, max_parallel: int | None = None
    ) -> Json:
        """Submit `size` jobs of one spec: {"array_id", "jobs": [job, ...]}."""
        array = {"size": size, **({"max_parallel": max_parallel} if max_parallel else {})}
        return self._json("POST", "/v1/jobs", json={**dict(spec), "array": array})

    def get_array(self, array_id: str) -> Json:
        """{"array_id", "size", "max_parallel", "counts": {state: n}, "jobs_url"}."""
        return self._json("GET", f"/v1/arrays/{_seg(array_id)}")

    def cancel_array(self, array_id: str, reason: str | None = None) -> Json:
        body = {"reason": reason} if reason else None
        return self._json("POST", f"/v1/arrays/{_seg(array_id)}/cancel", json=body)

    def cordon(self, worker: str) -> Json:
        """No new leases for the worker; its running jobs go on."""
        return self._json("POST", f"/v1/workers/{_seg(worker)}/cordon")

    def uncordon(self, worker: str) -> Json:
        return self._json("POST", f"/v1/workers/{_seg(worker)}/uncordon")

    def drain(self, worker: str, timeout: str | float | None = None) -> Json:
        """Cordon, then evict what still runs after `timeout` (retried elsewhere, uncounted)."""
        body = {"timeout": timeout} if timeout is not None else None
        return self._json("POST", f"/v1/workers/{_seg(worker)}/drain", json=body)

    def usage(
        self, since: str | None = None, until: str | None = None, group_by: str = "queue"
    ) -> JsonList:
        """Resources times time of runs in a window, per group (§14.3)."""
        params = _params(since=since, until=until, group_by=group_by)
        return _items(self._json("GET", "/v1/usage", params=params))

    def create_schedule(self, name: str, job: Mapping[str, Any], **fields: Any) -> Json:
        """cron or every, timezone, overlap, catchup, paused (§14.2)."""
        return self._json("POST", "/v1/schedules", json={"name": name, "job": dict(job), **fields})

    def schedules(self) -> JsonList:
        return _items(self._json("GET", "/v1/schedules"))

    def get_schedule(self, name: str) -> Json:
        return self._json("GET", f"/v1/schedules/{_seg(name)}")

    def update_schedule(self, name: str, **changes: Any) -> Json:
        return self._json("PATCH", f"/v1/schedules/{_seg(name)}", json=changes)

    def delete_schedule(self, name: str) -> None:
        self._request("DELETE", f"/v1/schedules/{_seg(name)}")

    def schedule_action(self, name: str, action: str) -> Json:
        """pause, resume or trigger (trigger answers the job it submitted)."""
        return self._json("POST", f"/v1/schedules/{_seg(name)}/{_seg(action)}")

    def wait(self, job_id: str, timeout: float | None = None) -> Json:
        """The job, once it is in a terminal state. Raises `WaitTimeout` after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get(job_id)
        if job["state"] in TERMINAL_STATES:
            return job
        past = self.events(job_id)
        if past and past[-1].get("state") in TERMINAL_STATES:
            return self.get(job_id)
        after = max((int(e["id"]) for e in past), default=0)
        with closing(self._watch(_params(job_id=job_id), after, deadline)) as stream:
            for event in stream:
                if event.get("job_id") == job_id and event.get("state") in TERMINAL_STATES:
                    return self.get(job_id)
        raise AssertionError("unreachable: the event stream never ends")  # pragma: no cover

    def _watch(
        self, params: Params, after: int | None, deadline: float | None
    ) -> Generator[Json, None, None]:
        last = after
        failures = 0
        retry_ms: int | None = None
        down_since: float | None = None
        while True:
            query, headers = dict(params), {}
            if last is not None:
                query["after"] = headers["Last-Event-ID"] = str(last)
            received = False
            parser = SSEParser()
            try:
                with self._stream("/v1/events", query, headers, _read_timeout(deadline)) as resp:
                    down_since = None
                    for line in iter_lines(resp.iter_bytes()):
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
            time.sleep(_reconnect_delay(failures, retry_ms, deadline))

    # -- plumbing -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, params=params, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(self.server) from exc
        except httpx.TransportError as exc:
            raise RequestFailed(f"request to jobfleet at {self.server} failed: {exc!r}") from exc
        if response.is_error:
            raise error_from_response(response)
        return response

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
    ) -> Json:
        response = self._request(method, path, params=params, json=json)
        try:
            body = response.json()
        except ValueError as exc:
            raise RequestFailed(f"{method} {path}: the server's answer is not JSON") from exc
        if not isinstance(body, dict):
            raise RequestFailed(f"{method} {path}: expected a JSON object from the server")
        return body

    @contextmanager
    def _stream(
        self, path: str, params: Params, headers: dict[str, str], read: float | None
    ) -> Iterator[httpx.Response]:
        """An open SSE response (status checked); connect failures raise ServerUnreachable."""
        timeout = httpx.Timeout(self.timeout, read=read)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **headers}
        try:
            with self._http.stream(
                "GET", path, params=params, headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                yield response
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(self.server) from exc


def error_from_response(response: httpx.Response) -> JobfleetError:
    """The exception for an error answer (application/problem+json, or anything else)."""
    status = response.status_code
    problem = _problem(response)
    detail = str(problem.get("detail") or problem.get("title") or "") or _fallback(response)
    exc: JobfleetError
    if status in (400, 422):
        errors = [e for e in problem.get("errors") or [] if isinstance(e, dict)]
        exc = InvalidInput(_invalid_message(detail, errors), errors=errors)
    elif status == 409 and ("state" in problem or "actions" in problem):
        state = problem.get("state")
        exc = IllegalTransition(
            detail,
            state=None if state is None else str(state),
            actions=_action_names(problem.get("actions")),
        )
    elif status in _STATUS_CLASSES:
        exc = _STATUS_CLASSES[status](detail)
    else:
        exc = JobfleetError(f"HTTP {status}: {detail}")
        exc.status = status
    exc.extra.setdefault("problem", problem)
    return exc


def _problem(response: httpx.Response) -> Json:
    if "json" not in response.headers.get("content-type", ""):
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _fallback(response: httpx.Response) -> str:
    text = response.text.strip()
    if text and len(text) <= 500 and "<" not in text:
        return text
    return response.reason_phrase or f"HTTP {response.status_code}"


def format_loc(loc: Any) -> str:
    """["body", "jobs", 3, "resources", "cpu"] → "jobs[3].resources.cpu"."""
    parts = list(loc) if isinstance(loc, list | tuple) else [loc]
    if len(parts) > 1 and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(request)"


def _invalid_message(detail: str, errors: Sequence[Json]) -> str:
    """The detail, then each `loc: msg` the detail does not already say."""
    lines = [f"{format_loc(e.get('loc', []))}: {e.get('msg', 'invalid')}" for e in errors]
    lines = [line for line in lines if line not in detail]
    if not lines:
        return detail
    return "\n".join([f"{detail}:", *(f"  {line}" for line in lines)])


def _action_names(actions: Any) -> list[str]:
    names: list[str] = []
    for action in actions or []:
        if isinstance(action, dict):
            if action.get("enabled", True):
                names.append(str(action.get("name")))
        else:
            names.append(str(action))
    return names


def _params(**values: str | Sequence[str] | None) -> Params:
    params: Params = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        params[key] = value if isinstance(value, str) else [*value]
    return params


def _items(answer: Json, key: str = "items") -> JsonList:
    items = answer.get(key)
    if not isinstance(items, list):
        raise RequestFailed(f"expected {key!r} in the server's answer")
    return items


def _seg(value: str) -> str:
    return quote(value, safe="")


def _job_path(job_id: str) -> str:
    return f"/v1/jobs/{_seg(job_id)}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) or (
        isinstance(value, str) and value.isascii() and value.isdigit()
    )


def _event_data(event: SSEEvent, last: int | None) -> Json | None:
    """The event's JSON, or None when it is not an event object or was already seen."""
    try:
        data = event.json()
    except ValueError as exc:
        raise RequestFailed(f"malformed event from the server: {event.data[:200]!r}") from exc
    if not isinstance(data, dict):
        return None
    if not _is_int(data.get("id")) and _is_int(event.id):
        data["id"] = int(event.id or 0)
    if last is not None and _is_int(data.get("id")) and int(data["id"]) <= last:
        return None
    return data


def _log_line(event: SSEEvent) -> str:
    try:
        data = event.json()
    except ValueError:
        return event.data
    return str(data.get("line", "")) if isinstance(data, dict) else str(data)


def _read_timeout(deadline: float | None) -> float:
    """Longer than the heartbeat interval, and no later than the deadline."""
    if deadline is None:
        return STREAM_READ_TIMEOUT
    return max(0.01, min(STREAM_READ_TIMEOUT, deadline - time.monotonic()))


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise WaitTimeout("the job did not reach a terminal state in time")


def _reconnect_delay(failures: int, retry_ms: int | None, deadline: float | None) -> float:
    if failures == 0:
        delay = 0.0
    else:
        base = retry_ms / 1000 if retry_ms is not None else 0.1
        delay = min(MAX_RECONNECT_DELAY, base * 2 ** (failures - 1))
    if deadline is not None:
        delay = min(delay, max(0.0, deadline - time.monotonic()))
    return delay
