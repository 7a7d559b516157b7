"""The SDK's calls of PRODUCT.md §14 (arrays, schedules, usage, cordon and drain): the sync
clients and the async one send the same requests, built once in client/core.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from jobfleet import AsyncClient, Client, Job
from jobfleet.client import JsonClient

SERVER = "http://jobfleet.test"
JOB = {"id": "J1", "queue": "default", "job_set": "default", "state": "QUEUED"}
SCHEDULE = {"name": "nightly", "paused": False}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("JOBFLEET_SERVER", raising=False)
    monkeypatch.delenv("JOBFLEET_TOKEN", raising=False)


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, request.url.query.decode(), body))
        path = request.url.path
        if request.method == "POST" and path == "/v1/jobs":
            return httpx.Response(201, json={"array_id": "A1", "jobs": [JOB, JOB]})
        if path == "/v1/jobs":
            return httpx.Response(200, json={"items": [JOB], "next_cursor": None})
        if path == "/v1/usage":
            return httpx.Response(200, json={"items": [{"group": "default", "runs": 1}]})
        if path == "/v1/schedules" and request.method == "GET":
            return httpx.Response(200, json={"items": [SCHEDULE]})
        if request.method == "DELETE":
            return httpx.Response(204)
        if path.endswith("/trigger"):
            return httpx.Response(201, json=JOB)
        return httpx.Response(200, json={"name": "x", **SCHEDULE})


# (method name, args, kwargs, the request it sends: method, path, query, body)
CASES: list[tuple[str, tuple[Any, ...], dict[str, Any], tuple[str, str, str, Any]]] = [
    (
        "submit_array",
        (["echo", "hi"], 2),
        {"max_parallel": 1, "queue": "ml"},
        (
            "POST",
            "/v1/jobs",
            "",
            {"command": ["echo", "hi"], "queue": "ml", "array": {"size": 2, "max_parallel": 1}},
        ),
    ),
    ("get_array", ("A1",), {}, ("GET", "/v1/arrays/A1", "", None)),
    ("cancel_array", ("A1", "done"), {}, ("POST", "/v1/arrays/A1/cancel", "", {"reason": "done"})),
    ("cordon", ("w1",), {}, ("POST", "/v1/workers/w1/cordon", "", None)),
    ("uncordon", ("w1",), {}, ("POST", "/v1/workers/w1/uncordon", "", None)),
    ("drain", ("w1", "5m"), {}, ("POST", "/v1/workers/w1/drain", "", {"timeout": "5m"})),
    (
        "usage",
        ("24h",),
        {"group_by": "worker"},
        ("GET", "/v1/usage", "since=24h&group_by=worker", None),
    ),
    (
        "create_schedule",
        ("nightly", {"command": ["true"]}),
        {"cron": "0 3 * * *"},
        (
            "POST",
            "/v1/schedules",
            "",
            {"name": "nightly", "job": {"command": ["true"]}, "cron": "0 3 * * *"},
        ),
    ),
    ("schedules", (), {}, ("GET", "/v1/schedules", "", None)),
    ("get_schedule", ("nightly",), {}, ("GET", "/v1/schedules/nightly", "", None)),
    (
        "update_schedule",
        ("nightly",),
        {"every": "1h"},
        ("PATCH", "/v1/schedules/nightly", "", {"every": "1h"}),
    ),
    ("delete_schedule", ("nightly",), {}, ("DELETE", "/v1/schedules/nightly", "", None)),
    ("pause_schedule", ("nightly",), {}, ("POST", "/v1/schedules/nightly/pause", "", None)),
    ("resume_schedule", ("nightly",), {}, ("POST", "/v1/schedules/nightly/resume", "", None)),
    ("trigger_schedule", ("nightly",), {}, ("POST", "/v1/schedules/nightly/trigger", "", None)),
    (
        "schedule_action",
        ("nightly", "pause"),
        {},
        ("POST", "/v1/schedules/nightly/pause", "", None),
    ),
    (
        "list",
        (),
        {"array_id": "A1", "schedule": "nightly"},
        ("GET", "/v1/jobs", "array_id=A1&schedule=nightly&limit=100", None),
    ),
]


def _sync(factory: Callable[..., Any], name: str, args: Any, kwargs: Any) -> tuple[Any, Recorder]:
    recorder = Recorder()
    with factory(SERVER, "t", transport=httpx.MockTransport(recorder)) as client:
        answer = getattr(client, name)(*args, **kwargs)
    return answer, recorder


def _async(name: str, args: Any, kwargs: Any) -> tuple[Any, Recorder]:
    recorder = Recorder()

    async def main() -> Any:
        async with AsyncClient(SERVER, "t", transport=httpx.MockTransport(recorder)) as client:
            return await getattr(client, name)(*args, **kwargs)

    return asyncio.run(main()), recorder


@pytest.mark.parametrize(("name", "args", "kwargs", "request_"), CASES, ids=[c[0] for c in CASES])
def test_every_client_sends_the_same_request(
    name: str, args: Any, kwargs: Any, request_: tuple[str, str, str, Any]
) -> None:
    for factory in (Client, JsonClient):
        _, recorder = _sync(factory, name, args, kwargs)
        assert recorder.requests == [request_], factory
    _, recorder = _async(name, args, kwargs)
    assert recorder.requests == [request_]


def test_submit_array_answers_the_array_id_and_its_jobs() -> None:
    array_id, jobs = _sync(Client, "submit_array", (["true"], 2), {})[0]
    assert array_id == "A1" and [type(j) for j in jobs] == [Job, Job]
    array_id, plain = _sync(JsonClient, "submit_array", (["true"], 2), {})[0]
    assert array_id == "A1" and plain == [JOB, JOB]
    array_id, jobs = _async("submit_array", (["true"], 2), {})[0]
    assert array_id == "A1" and isinstance(jobs[0], Job)


def test_trigger_answers_the_job_and_iter_jobs_filters_by_array() -> None:
    assert isinstance(_sync(Client, "trigger_schedule", ("s",), {})[0], Job)
    assert _sync(JsonClient, "trigger_schedule", ("s",), {})[0] == JOB
    recorder = Recorder()
    with Client(SERVER, "t", transport=httpx.MockTransport(recorder)) as client:
        assert [j.id for j in client.iter_jobs(array_id="A1")] == ["J1"]
    assert recorder.requests[0][2] == "array_id=A1&limit=1000"
