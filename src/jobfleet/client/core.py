"""The SDK's core, written once for every client: no I/O happens here.

`client/sync.py` (`JsonClient`, `Client`) and `client/aio.py` (`AsyncClient`) are thin shells
over it, as httpx's `Client` and `AsyncClient` are over its `BaseClient`: each shell only sends
the `Call`s built here and feeds the answers back. What lives here:

- connection settings (`BaseClient`): server, token, timeout, the headers of every request;
- request building: one function per API operation, returning a `Call` (method, path, query,
  body) and the way to decode its answer; the job spec that `submit` sends (`job_spec`);
- response parsing: problem+json answers to `JobfleetError` classes (`error_from_response`),
  JSON bodies checked (`decode_object`);
- the state of a followed stream: `EventResume` (the event stream's resume point, duplicates,
  reconnect delays, the deadline of `wait`) and `LogFollow` (a live log, resumed by line id);
- the conversion of answers to typed models or plain JSON (`Codec`).
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from jobfleet.client.models import Event, HistoryEntry, Job, JobPage
from jobfleet.client.profile import resolve
from jobfleet.client.sse import SSEEvent, SSEParser
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

if TYPE_CHECKING:
    from jobfleet.models import JobSpec

Json = dict[str, Any]
JsonList = list[dict[str, Any]]
# what `submit` takes: a command (argv; a string only with shell=True), a spec, or None when
# the keywords hold the command
SpecLike: TypeAlias = "JobSpec | Mapping[str, Any] | Sequence[str] | None"
Params = dict[str, str | list[str]]
R = TypeVar("R")

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "PREEMPTED"})
STREAM_READ_TIMEOUT = 45.0  # the server sends a heartbeat at least every 15 s
MAX_RECONNECT_DELAY = 5.0
LOG_RESUME_DELAY = 0.2
RESOURCE_FIELDS = ("cpu", "memory", "gpu")


# -- errors -----------------------------------------------------------------------------------


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


def transport_error(server: str, exc: httpx.TransportError) -> JobfleetError:
    """What a failed exchange raises: unreachable when no connection was made."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ServerUnreachable(server)
    return RequestFailed(f"request to jobfleet at {server} failed: {exc!r}")


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


# -- requests and their answers ---------------------------------------------------------------


def decode_object(response: httpx.Response) -> Json:
    """The answer's JSON object; anything else is a `RequestFailed`."""
    where = f"{response.request.method} {response.request.url.path}"
    try:
        body = response.json()
    except ValueError as exc:
        raise RequestFailed(f"{where}: the server's answer is not JSON") from exc
    if not isinstance(body, dict):
        raise RequestFailed(f"{where}: expected a JSON object from the server")
    return body


def _items_of(key: str) -> Callable[[httpx.Response], JsonList]:
    def decode(response: httpx.Response) -> JsonList:
        return items(decode_object(response), key)

    return decode


def _text(response: httpx.Response) -> str:
    return response.text


def _nothing(response: httpx.Response) -> None:
    return None


def _counts(response: httpx.Response) -> dict[str, int]:
    return {k: int(v) for k, v in decode_object(response).items()}


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One API request, and how to decode its (successful) answer."""

    method: str
    path: str
    decode: Callable[[httpx.Response], R]
    params: Params | None = None
    body: Any = None


def items(answer: Json, key: str = "items") -> JsonList:
    found = answer.get(key)
    if not isinstance(found, list):
        raise RequestFailed(f"expected {key!r} in the server's answer")
    return found


def params(**values: str | Sequence[str] | None) -> Params:
    out: Params = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        out[key] = value if isinstance(value, str) else [*value]
    return out


def _seg(value: str) -> str:
    return quote(value, safe="")


def _job(job_id: str, tail: str = "") -> str:
    return f"/v1/jobs/{_seg(job_id)}{tail}"


def _job_set(queue: str, job_set: str, verb: str) -> str:
    return f"/v1/job-sets/{_seg(queue)}/{_seg(job_set)}/{verb}"


class calls:  # a namespace: `calls.get(job_id)` reads as the operation it builds
    """Every API operation as a `Call` (the HTTP API; its reference is `/docs` on a server)."""

    @staticmethod
    def submit(spec: Json) -> Call[Json]:
        return Call("POST", "/v1/jobs", decode_object, body=spec)

    @staticmethod
    def submit_many(specs: Sequence[Json]) -> Call[JsonList]:
        return Call("POST", "/v1/jobs", _items_of("jobs"), body={"jobs": [*specs]})

    @staticmethod
    def get(job_id: str) -> Call[Json]:
        return Call("GET", _job(job_id), decode_object)

    @staticmethod
    def list(
        queue: str | None,
        job_set: str | None,
        state: str | None,
        label: str | Sequence[str] | None,
        q: str | None,
        limit: int,
        cursor: str | None,
        array_id: str | None = None,
        schedule: str | None = None,
    ) -> Call[Json]:
        query = params(queue=queue, job_set=job_set, state=state, label=label, q=q, cursor=cursor)
        query.update(params(array_id=array_id, schedule=schedule))
        query["limit"] = str(limit)
        return Call("GET", "/v1/jobs", decode_object, params=query)

    @staticmethod
    def cancel(job_id: str, reason: str | None) -> Call[Json]:
        body = {"reason": reason} if reason else None
        return Call("POST", _job(job_id, "/cancel"), decode_object, body=body)

    @staticmethod
    def cancel_job_set(
        queue: str, job_set: str, states: Sequence[str] | None
    ) -> Call[dict[str, int]]:
        body = {"states": [*states]} if states else None
        return Call("POST", _job_set(queue, job_set, "cancel"), _counts, body=body)

    @staticmethod
    def reprioritize(job_id: str, priority: int) -> Call[Json]:
        body = {"priority": priority}
        return Call("POST", _job(job_id, "/reprioritize"), decode_object, body=body)

    @staticmethod
    def reprioritize_job_set(queue: str, job_set: str, priority: int) -> Call[dict[str, int]]:
        path = _job_set(queue, job_set, "reprioritize")
        return Call("POST", path, _counts, body={"priority": priority})

    @staticmethod
    def preempt(job_id: str) -> Call[Json]:
        return Call("POST", _job(job_id, "/preempt"), decode_object)

    @staticmethod
    def retry(job_id: str) -> Call[Json]:
        return Call("POST", _job(job_id, "/retry"), decode_object)

    @staticmethod
    def job_events(job_id: str) -> Call[JsonList]:
        return Call("GET", _job(job_id, "/events"), _items_of("items"))

    @staticmethod
    def history(job_id: str) -> Call[JsonList]:
        return Call("GET", _job(job_id, "/history"), _items_of("items"))

    @staticmethod
    def errors(job_id: str, limit: int, cursor: str | None) -> Call[Json]:
        query = params(cursor=cursor)
        query["limit"] = str(limit)
        return Call("GET", _job(job_id, "/errors"), decode_object, params=query)

    @staticmethod
    def checkpoints(job_id: str) -> Call[JsonList]:
        return Call("GET", _job(job_id, "/checkpoints"), _items_of("items"))

    @staticmethod
    def logs(job_id: str, stream: str, run: str | None, timestamps: bool) -> Call[str]:
        query = params(stream=stream, run=run, timestamps="true" if timestamps else None)
        return Call("GET", _job(job_id, "/logs"), _text, params=query)

    @staticmethod
    def list_queues() -> Call[JsonList]:
        return Call("GET", "/v1/queues", _items_of("items"))

    @staticmethod
    def get_queue(name: str) -> Call[Json]:
        return Call("GET", f"/v1/queues/{_seg(name)}", decode_object)

    @staticmethod
    def create_queue(name: str, fields: Mapping[str, Any]) -> Call[Json]:
        return Call("POST", "/v1/queues", decode_object, body={"name": name, **fields})

    @staticmethod
    def update_queue(name: str, changes: Mapping[str, Any]) -> Call[Json]:
        return Call("PATCH", f"/v1/queues/{_seg(name)}", decode_object, body=dict(changes))

    @staticmethod
    def delete_queue(name: str) -> Call[None]:
        return Call("DELETE", f"/v1/queues/{_seg(name)}", _nothing)

    @staticmethod
    def workers() -> Call[JsonList]:
        return Call("GET", "/v1/workers", _items_of("items"))

    @staticmethod
    def shards() -> Call[JsonList]:
        return Call("GET", "/v1/shards", _items_of("items"))

    @staticmethod
    def create_token(
        name: str,
        queues: Sequence[str],
        verbs: Sequence[str],
        admin: bool,
        worker: bool,
        worker_name: str | None = None,
    ) -> Call[Json]:
        body: dict[str, Any] = {"name": name, "queues": [*queues], "verbs": [*verbs]}
        body.update(admin=admin, worker=worker)
        if worker_name is not None:
            body["worker_name"] = worker_name
        return Call("POST", "/v1/auth/tokens", decode_object, body=body)

    @staticmethod
    def principals() -> Call[JsonList]:
        return Call("GET", "/v1/auth/principals", _items_of("items"))

    @staticmethod
    def revoke_token(token_id: str) -> Call[Json]:
        return Call("DELETE", f"/v1/auth/tokens/{_seg(token_id)}", decode_object)

    @staticmethod
    def whoami() -> Call[Json]:
        return Call("GET", "/v1/auth/whoami", decode_object)

    # arrays, schedules, usage, operating workers (PRODUCT.md §14)

    @staticmethod
    def submit_array(spec: Json, size: int, max_parallel: int | None) -> Call[Json]:
        array: Json = {"size": size}
        if max_parallel:
            array["max_parallel"] = max_parallel
        return Call("POST", "/v1/jobs", decode_object, body={**spec, "array": array})

    @staticmethod
    def get_array(array_id: str) -> Call[Json]:
        return Call("GET", f"/v1/arrays/{_seg(array_id)}", decode_object)

    @staticmethod
    def cancel_array(array_id: str, reason: str | None) -> Call[Json]:
        body = {"reason": reason} if reason else None
        return Call("POST", f"/v1/arrays/{_seg(array_id)}/cancel", decode_object, body=body)

    @staticmethod
    def cordon(worker: str) -> Call[Json]:
        return Call("POST", f"/v1/workers/{_seg(worker)}/cordon", decode_object)

    @staticmethod
    def uncordon(worker: str) -> Call[Json]:
        return Call("POST", f"/v1/workers/{_seg(worker)}/uncordon", decode_object)

    @staticmethod
    def drain(worker: str, timeout: str | float | None) -> Call[Json]:
        body = {"timeout": timeout} if timeout is not None else None
        return Call("POST", f"/v1/workers/{_seg(worker)}/drain", decode_object, body=body)

    @staticmethod
    def usage(since: str | None, until: str | None, group_by: str) -> Call[JsonList]:
        query = params(since=since, until=until, group_by=group_by)
        return Call("GET", "/v1/usage", _items_of("items"), params=query)

    @staticmethod
    def create_schedule(name: str, job: Mapping[str, Any], fields: Mapping[str, Any]) -> Call[Json]:
        body = {"name": name, "job": dict(job), **fields}
        return Call("POST", "/v1/schedules", decode_object, body=body)

    @staticmethod
    def schedules() -> Call[JsonList]:
        return Call("GET", "/v1/schedules", _items_of("items"))

    @staticmethod
    def get_schedule(name: str) -> Call[Json]:
        return Call("GET", f"/v1/schedules/{_seg(name)}", decode_object)

    @staticmethod
    def update_schedule(name: str, changes: Mapping[str, Any]) -> Call[Json]:
        path = f"/v1/schedules/{_seg(name)}"
        return Call("PATCH", path, decode_object, body=dict(changes))

    @staticmethod
    def delete_schedule(name: str) -> Call[None]:
        return Call("DELETE", f"/v1/schedules/{_seg(name)}", _nothing)

    @staticmethod
    def schedule_action(name: str, action: str) -> Call[Json]:
        """pause, resume or trigger (trigger answers the job it submitted)."""
        return Call("POST", f"/v1/schedules/{_seg(name)}/{_seg(action)}", decode_object)


# -- the job spec of submit -------------------------------------------------------------------


def _spec_fields() -> frozenset[str]:
    from jobfleet.models import JobSpec

    return frozenset(JobSpec.model_fields)


def job_spec(spec: object, fields: Mapping[str, Any], what: str = "submit()") -> Json:
    """The JSON spec `submit` sends, from a spec and/or keyword arguments.

    `spec` is a `jobfleet.models.JobSpec`, a mapping (the JSON spec), a command (a list of
    strings; a string only with `shell=True`), or None when the keywords hold `command`.
    Keywords are spec fields (`queue="ml"`, `labels={...}`) plus `cpu`, `memory` and `gpu`,
    which go into `resources`. Anything else is a `TypeError` that says what is expected.
    """
    known = _spec_fields()
    for name in fields:
        if name not in known and name not in RESOURCE_FIELDS:
            close = difflib.get_close_matches(name, [*known, *RESOURCE_FIELDS], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{what} got an unexpected keyword argument {name!r}{hint}")
    out: Json
    if spec is None:
        out = {}
    elif isinstance(spec, BaseModel):
        from jobfleet.models import JobSpec

        if not isinstance(spec, JobSpec):
            raise TypeError(f"{what} takes a JobSpec, not a {type(spec).__name__}")
        out = spec.model_dump(mode="json", exclude_unset=True)
    elif isinstance(spec, Mapping):
        out = dict(spec)
    elif isinstance(spec, str):
        if not fields.get("shell"):
            raise TypeError(
                f"{what}: a command is a list of arguments, e.g. ['echo', 'hi']; "
                "to run a string through /bin/sh pass shell=True"
            )
        out = {"command": spec}
    elif isinstance(spec, list | tuple):
        out = {"command": _argv(spec, what)}
    else:
        raise TypeError(
            f"{what} takes a command (a list of strings), a job spec (a dict or "
            f"jobfleet.models.JobSpec) and/or keyword arguments, not {type(spec).__name__}"
        )
    if "command" in out and "command" in fields:
        raise TypeError(f"{what} got the command twice (positionally and as command=)")
    resources = {k: fields[k] for k in RESOURCE_FIELDS if k in fields}
    out.update({k: v for k, v in fields.items() if k not in RESOURCE_FIELDS})
    if isinstance(out.get("command"), list | tuple):
        out["command"] = _argv(out["command"], what)
    if resources:
        given = out.get("resources")
        out["resources"] = {**(dict(given) if isinstance(given, Mapping) else {}), **resources}
    if spec is None and "command" not in out:  # a spec's own fields are the server's to check
        raise TypeError(f"{what} needs a command, e.g. submit(['echo', 'hi'])")
    return out


def _argv(command: Sequence[Any], what: str) -> list[str]:
    argv: list[str] = []
    for i, arg in enumerate(command):
        if isinstance(arg, os.PathLike):
            arg = os.fspath(arg)
        if not isinstance(arg, str):
            raise TypeError(
                f"{what}: every argument of the command is a string; "
                f"argument {i} is {type(arg).__name__} {arg!r}"
            )
        argv.append(arg)
    return argv


def job_specs(specs: Sequence[object]) -> JsonList:
    """The specs of `submit_many`: each a mapping or a `JobSpec`."""
    if isinstance(specs, str | bytes | Mapping) or not isinstance(specs, Sequence):
        raise TypeError(f"submit_many() takes a list of job specs, not {type(specs).__name__}")
    out: JsonList = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping | BaseModel):
            raise TypeError(
                f"submit_many(): item {i} is a {type(spec).__name__}, not a job spec (a dict or "
                "JobSpec); to submit one command use submit([...])"
            )
        out.append(job_spec(spec, {}, f"submit_many() item {i}"))
    return out


# -- typed or plain answers -------------------------------------------------------------------

JobT = TypeVar("JobT")
PageT = TypeVar("PageT")
EventT = TypeVar("EventT")
EntryT = TypeVar("EntryT")


@dataclass(frozen=True, slots=True)
class Codec(Generic[JobT, PageT, EventT, EntryT]):
    """How a client turns the server's JSON into what it answers with."""

    job: Callable[[Json], JobT]
    page: Callable[[Json], PageT]
    event: Callable[[Json], EventT]
    entry: Callable[[Json], EntryT]


def _same(value: Json) -> Json:
    return value


JSON: Codec[Json, Json, Json, Json] = Codec(_same, _same, _same, _same)
TYPED: Codec[Job, JobPage, Event, HistoryEntry] = Codec(
    Job.parse, JobPage.parse, Event.parse, HistoryEntry.parse
)


# -- the connection settings ------------------------------------------------------------------


class BaseClient:
    """Server, token and timeout, resolved as the module docstring of `profile` says."""

    reconnect_window = 60.0  # how long a followed stream keeps trying to reach a vanished server

    def __init__(self, server: str | None, token: str | None, timeout: float) -> None:
        self.server, self.token = resolve(server, token)
        self.timeout = timeout

    def _http_options(self) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {"base_url": self.server, "headers": headers, "timeout": self.timeout}

    def _stream_options(self, headers: Mapping[str, str], read: float | None) -> dict[str, Any]:
        return {
            "headers": {"Accept": "text/event-stream", "Cache-Control": "no-cache", **headers},
            "timeout": httpx.Timeout(self.timeout, read=read),
        }

    def _events_resume(
        self, query: Params, after: int | None, deadline: float | None = None
    ) -> EventResume:
        return EventResume(query, after, deadline, self.reconnect_window)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server={self.server!r})"


# -- followed streams -------------------------------------------------------------------------


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def last_event_id(events: Sequence[Json]) -> int:
    return max((int(e["id"]) for e in events if is_int(e.get("id"))), default=0)


def ended(events: Sequence[Json]) -> bool:
    """True when the last of a job's events is a terminal one."""
    return bool(events) and events[-1].get("state") in TERMINAL_STATES


def is_int(value: Any) -> bool:
    return isinstance(value, int) or (
        isinstance(value, str) and value.isascii() and value.isdigit()
    )


@dataclass
class EventResume:
    """Where a followed `/v1/events` stream is, and how to pick it up after a drop.

    The shells loop: `connect()` gives the query and headers of the next connection; each line
    read goes to `feed()`, which answers an event not seen yet (or None); an unreachable server
    goes to `unreachable()`, which raises once it has been gone for `reconnect_window`; when a
    connection ends, `closed()` says how long to sleep before the next one. A dropped
    connection resumes with `Last-Event-ID` = the last id yielded, so nothing is missed or
    repeated; `deadline` (for `wait`) raises `WaitTimeout`.
    """

    query: Params
    last: int | None
    deadline: float | None
    reconnect_window: float
    failures: int = 0
    retry_ms: int | None = None
    down_since: float | None = None
    parser: SSEParser = field(default_factory=SSEParser)
    received: bool = False

    def connect(self) -> tuple[Params, dict[str, str], float]:
        query, headers = dict(self.query), {}
        if self.last is not None:
            query["after"] = headers["Last-Event-ID"] = str(self.last)
        self.parser, self.received = SSEParser(), False
        return query, headers, self.read_timeout()

    def read_timeout(self) -> float:
        """Longer than the heartbeat interval, and no later than the deadline."""
        if self.deadline is None:
            return STREAM_READ_TIMEOUT
        return max(0.01, min(STREAM_READ_TIMEOUT, self.deadline - time.monotonic()))

    def opened(self) -> None:
        self.down_since = None

    def feed(self, line: str) -> Json | None:
        self.received = True
        self.check_deadline()
        event = self.parser.feed(line)
        data = None if event is None else _event_data(event, self.last)
        if data is not None and is_int(data.get("id")):
            self.last = int(data["id"])
        return data

    def unreachable(self) -> bool:
        """Call on ServerUnreachable/ServiceUnavailable: True when it is time to give up."""
        self.down_since = self.down_since or time.monotonic()
        return time.monotonic() - self.down_since > self.reconnect_window

    def closed(self) -> float:
        """The connection ended: the delay before the next one."""
        self.check_deadline()
        self.failures = 0 if self.received else self.failures + 1
        if self.parser.retry is not None:
            self.retry_ms = self.parser.retry
        if self.failures == 0:
            delay = 0.0
        else:
            base = self.retry_ms / 1000 if self.retry_ms is not None else 0.1
            delay = min(MAX_RECONNECT_DELAY, base * 2 ** (self.failures - 1))
        if self.deadline is not None:
            delay = min(delay, max(0.0, self.deadline - time.monotonic()))
        return delay

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise WaitTimeout("the job did not reach a terminal state in time")


def _event_data(event: SSEEvent, last: int | None) -> Json | None:
    """The event's JSON, or None when it is not an event object or was already seen."""
    try:
        data = event.json()
    except ValueError as exc:
        raise RequestFailed(f"malformed event from the server: {event.data[:200]!r}") from exc
    if not isinstance(data, dict):
        return None
    if not is_int(data.get("id")) and is_int(event.id):
        data["id"] = int(event.id or 0)
    if last is not None and is_int(data.get("id")) and int(data["id"]) <= last:
        return None
    return data


def waited_for(event: Json, job_id: str) -> bool:
    """True for the event that ends `wait` (the job's first terminal event)."""
    return event.get("job_id") == job_id and event.get("state") in TERMINAL_STATES


@dataclass
class LogFollow:
    """A followed log (`?follow=true`): lines until the `end` event, resumed by line id.

    A log stream may stay silent while the job computes, so it has no read timeout. If the
    connection drops and the server numbered its lines (`id:`), it resumes after the last;
    otherwise `broke()` raises `RequestFailed`.
    """

    path: str
    query: Params
    resume: str | None = None
    ended: bool = False
    parser: SSEParser = field(default_factory=SSEParser)

    def connect(self) -> tuple[Params, dict[str, str]]:
        self.parser = SSEParser(last_event_id=self.resume)
        return self.query, {"Last-Event-ID": self.resume} if self.resume else {}

    def feed(self, line: str) -> str | None:
        event = self.parser.feed(line)
        if event is None:
            return None
        if event.event == "end":
            self.ended = True
            return None
        return _log_line(event) if event.event == "log" else None

    def broke(self, reason: str | None = None) -> float:
        """The connection ended before `end`: the delay before resuming (or RequestFailed)."""
        reason = reason or "the log stream ended before the run was over"
        if not self.parser.last_event_id:
            raise RequestFailed(reason)
        self.resume = self.parser.last_event_id
        return LOG_RESUME_DELAY


def log_follow(job_id: str, stream: str, run: str | None) -> LogFollow:
    return LogFollow(_job(job_id, "/logs"), params(stream=stream, run=run, follow="true"))


def _log_line(event: SSEEvent) -> str:
    try:
        data = event.json()
    except ValueError:
        return event.data
    return str(data.get("line", "")) if isinstance(data, dict) else str(data)
