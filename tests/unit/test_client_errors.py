"""The SDK against a stand-in server (httpx.MockTransport): error mapping, paging, streams."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from jobfleet.client import JsonClient as Client
from jobfleet.client import RequestFailed, ServerUnreachable, WaitTimeout
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

Handler = Callable[[httpx.Request], httpx.Response]
SERVER = "http://jobfleet.test"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("JOBFLEET_SERVER", raising=False)
    monkeypatch.delenv("JOBFLEET_TOKEN", raising=False)


def client_for(handler: Handler) -> Client:
    return Client(SERVER, "tok", transport=httpx.MockTransport(handler))


def problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": "t", "status": status, "detail": detail, **extra}
    return httpx.Response(
        status, content=json.dumps(body), headers={"content-type": "application/problem+json"}
    )


def sse(*events: tuple[int, str, dict[str, Any]], comment: bool = True) -> bytes:
    text = ": connected\n\n" if comment else ""
    for event_id, kind, data in events:
        text += f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"
    return text.encode()


def event(event_id: int, state: str, job_id: str = "j1") -> dict[str, Any]:
    return {"id": event_id, "type": state.lower(), "job_id": job_id, "state": state}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (503, ServiceUnavailable),
        (502, ServiceUnavailable),
    ],
)
def test_problem_status_maps_to_its_class_with_the_detail(
    status: int, cls: type[JobfleetError]
) -> None:
    client = client_for(lambda _: problem(status, "job j9 not found"))
    with pytest.raises(cls) as info:
        client.get("j9")
    assert type(info.value) is cls
    assert info.value.detail == "job j9 not found"
    assert str(info.value) == "job j9 not found"


def test_422_lists_each_loc_and_msg() -> None:
    errors = [
        {"loc": ["body", "jobs", 2, "resources", "cpu"], "msg": "must be more than 0"},
        {"loc": ["body", "command"], "msg": "field required"},
    ]
    client = client_for(lambda _: problem(422, "invalid: jobs.2.resources.cpu", errors=errors))
    with pytest.raises(InvalidInput) as info:
        client.submit({"command": []})
    message = str(info.value)
    assert message.startswith("invalid: jobs.2.resources.cpu:")
    assert "  jobs[2].resources.cpu: must be more than 0" in message
    assert "  command: field required" in message
    assert info.value.extra["errors"] == errors


def test_422_does_not_repeat_what_the_detail_says() -> None:
    errors = [{"loc": ["body", "resources", "cpu"], "msg": "must be more than 0"}]
    client = client_for(lambda _: problem(422, "resources.cpu: must be more than 0", errors=errors))
    with pytest.raises(InvalidInput) as info:
        client.submit({"command": ["x"]})
    assert str(info.value) == "resources.cpu: must be more than 0"


def test_409_with_state_is_an_illegal_transition() -> None:
    actions = [{"name": "retry", "enabled": True}, {"name": "cancel", "enabled": False}]
    client = client_for(
        lambda _: problem(409, "job is SUCCEEDED", state="SUCCEEDED", actions=actions)
    )
    with pytest.raises(IllegalTransition) as info:
        client.cancel("j1")
    assert info.value.state == "SUCCEEDED"
    assert info.value.actions == ["retry"]
    assert str(info.value) == "job is SUCCEEDED"


def test_409_with_action_names() -> None:
    client = client_for(lambda _: problem(409, "no", state="FAILED", actions=["retry"]))
    with pytest.raises(IllegalTransition) as info:
        client.cancel("j1")
    assert info.value.actions == ["retry"]


def test_error_without_problem_body() -> None:
    client = client_for(lambda _: httpx.Response(500, text="<html>boom</html>"))
    with pytest.raises(JobfleetError) as info:
        client.get("j1")
    assert str(info.value) == "HTTP 500: Internal Server Error"
    assert info.value.status == 500


def test_connection_refused_is_server_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ServerUnreachable) as info:
        client_for(refuse).get("j1")
    assert isinstance(info.value, JobfleetError)
    assert str(info.value) == (
        f"cannot reach jobfleet at {SERVER}: is `jobfleet up` running? "
        "(set --server or JOBFLEET_SERVER)"
    )


def test_read_timeout_is_a_jobfleet_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(RequestFailed):
        client_for(slow).get("j1")


def test_token_and_paths() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"cancelled": 2, "cancel_requested": 1})

    answer = client_for(handler).cancel_job_set("ml", "sweep/1", ["QUEUED"])
    assert answer == {"cancelled": 2, "cancel_requested": 1}
    [request] = seen
    assert request.headers["authorization"] == "Bearer tok"
    assert request.url.raw_path == b"/v1/job-sets/ml/sweep%2F1/cancel"
    assert json.loads(request.content) == {"states": ["QUEUED"]}


def test_submit_many_sends_one_batch() -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        jobs = [{"id": f"j{i}"} for i, _ in enumerate(bodies[-1]["jobs"])]
        return httpx.Response(201, json={"jobs": jobs})

    jobs = client_for(handler).submit_many([{"command": ["a"]}, {"command": ["b"]}])
    assert [j["id"] for j in jobs] == ["j0", "j1"]
    assert bodies == [{"jobs": [{"command": ["a"]}, {"command": ["b"]}]}]


def test_iter_jobs_follows_next_cursor() -> None:
    pages = {None: (["a", "b"], "c1"), "c1": (["c"], None)}
    queries: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        queries.append(query)
        ids, cursor = pages[query.get("cursor")]
        return httpx.Response(200, json={"items": [{"id": i} for i in ids], "next_cursor": cursor})

    got = [j["id"] for j in client_for(handler).iter_jobs(queue="ml", page_size=2)]
    assert got == ["a", "b", "c"]
    assert queries[0] == {"queue": "ml", "limit": "2"}
    assert queries[1]["cursor"] == "c1"


def test_watch_resumes_with_last_event_id_and_never_repeats() -> None:
    seen_resume: list[str | None] = []

    def dropped(body: bytes) -> Iterator[bytes]:
        yield body
        raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        seen_resume.append(request.headers.get("last-event-id"))
        if len(seen_resume) == 1:
            body = sse((1, "queued", event(1, "QUEUED")), (2, "leased", event(2, "LEASED")))
            return httpx.Response(200, content=dropped(body))
        # the server replays event 2 (as a careless one might): the client drops it
        body = sse((2, "leased", event(2, "LEASED")), (3, "running", event(3, "RUNNING")))
        return httpx.Response(200, content=body)

    stream = client_for(handler).watch(job_id="j1")
    got = [next(stream)["id"] for _ in range(3)]
    stream.close()
    assert got == [1, 2, 3]
    assert seen_resume == [None, "2"]


def test_wait_returns_at_once_for_a_terminal_job() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/jobs/j1"
        return httpx.Response(200, json={"id": "j1", "state": "FAILED"})

    assert client_for(handler).wait("j1")["state"] == "FAILED"


def test_wait_watches_after_the_last_known_event() -> None:
    gets = 0
    watched: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal gets
        if request.url.path == "/v1/jobs/j1":
            gets += 1
            return httpx.Response(
                200, json={"id": "j1", "state": "RUNNING" if gets == 1 else "SUCCEEDED"}
            )
        if request.url.path == "/v1/jobs/j1/events":
            return httpx.Response(200, json={"items": [event(4, "QUEUED"), event(9, "RUNNING")]})
        watched.append(dict(request.url.params))
        body = sse(
            (11, "running", event(11, "RUNNING", "other")),
            (12, "succeeded", event(12, "SUCCEEDED")),
        )
        return httpx.Response(200, content=body)

    assert client_for(handler).wait("j1")["state"] == "SUCCEEDED"
    assert watched == [{"job_id": "j1", "after": "9"}]


def test_wait_times_out() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/jobs/j1":
            return httpx.Response(200, json={"id": "j1", "state": "RUNNING"})
        if request.url.path == "/v1/jobs/j1/events":
            return httpx.Response(200, json={"items": [event(1, "RUNNING")]})
        raise httpx.ReadTimeout("quiet", request=request)

    with pytest.raises(WaitTimeout):
        client_for(handler).wait("j1", timeout=0.05)


def test_follow_logs_yields_lines_until_end() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert dict(request.url.params) == {"stream": "stderr", "follow": "true"}
        body = (
            ": following\n\n"
            'event: log\ndata: {"line": "hello"}\n\n'
            'event: log\ndata: {"line": ""}\n\n'
            'event: end\ndata: {"state": "SUCCEEDED"}\n\n'
            'event: log\ndata: {"line": "never"}\n\n'
        )
        return httpx.Response(200, content=body.encode())

    assert list(client_for(handler).follow_logs("j1", "stderr")) == ["hello", ""]


def test_follow_logs_cut_off_without_ids_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'event: log\ndata: {"line": "a"}\n\n')

    stream = client_for(handler).follow_logs("j1")
    assert next(stream) == "a"
    with pytest.raises(RequestFailed, match="ended before the run was over"):
        next(stream)


def test_stream_error_status_is_mapped() -> None:
    client = client_for(lambda _: problem(401, "missing bearer token"))
    with pytest.raises(Unauthorized):
        next(client.watch())
