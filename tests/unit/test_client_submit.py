"""`submit` takes a command with keyword arguments, a dict or a `JobSpec`, and refuses anything
else with a TypeError that says what it takes; the sync and async shells send the same requests."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobfleet import AsyncClient, Client
from jobfleet.client import JsonClient
from jobfleet.models import JobSpec, Resources

SERVER = "http://jobfleet.test"
JOB = {"id": "J1", "queue": "default", "job_set": "default", "state": "QUEUED"}


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
        self.requests.append((request.method, request.url.path, str(request.url.query), body))
        path = request.url.path
        if path.endswith("/events"):
            return httpx.Response(200, json={"items": []})
        if path.startswith("/v1/job-sets"):
            return httpx.Response(200, json={"cancelled": 1, "cancel_requested": 0})
        if request.method == "POST" and body and "jobs" in body:
            return httpx.Response(201, json={"jobs": [JOB for _ in body["jobs"]]})
        if path == "/v1/jobs" and request.method == "GET":
            return httpx.Response(200, json={"items": [JOB], "next_cursor": None})
        return httpx.Response(200, json=JOB)


def sent(recorder: Recorder, *args: Any, **kwargs: Any) -> Any:
    with Client(SERVER, "t", transport=httpx.MockTransport(recorder)) as client:
        client.submit(*args, **kwargs)
    return recorder.requests[-1][3]


def test_a_command_with_keyword_arguments() -> None:
    body = sent(Recorder(), ["python", Path("train.py")], cpu=2, memory="4Gi", queue="ml")
    assert body == {
        "command": ["python", "train.py"],
        "resources": {"cpu": 2, "memory": "4Gi"},
        "queue": "ml",
    }


def test_a_dict_a_jobspec_and_keywords_over_a_spec() -> None:
    assert sent(Recorder(), {"command": ["true"], "labels": {"a": "b"}}) == {
        "command": ["true"],
        "labels": {"a": "b"},
    }
    spec = JobSpec(command=["echo", "hi"], resources=Resources(cpu=0.5), job_set="s")
    assert sent(Recorder(), spec) == {
        "command": ["echo", "hi"],
        "resources": {"cpu": 0.5},
        "job_set": "s",
    }
    merged = sent(Recorder(), {"command": ["x"], "resources": {"cpu": 1, "gpu": 1}}, cpu=4)
    assert merged["resources"] == {"cpu": 4, "gpu": 1}
    assert sent(Recorder(), command=["y"], priority=3) == {"command": ["y"], "priority": 3}
    assert sent(Recorder(), "echo $HOME", shell=True) == {"command": "echo $HOME", "shell": True}


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((42,), {}, "takes a command (a list of strings), a job spec"),
        (("echo hi",), {}, "a command is a list of arguments"),
        ((["echo", 1],), {}, "argument 1 is int 1"),
        ((["echo"],), {"cpus": 2}, "unexpected keyword argument 'cpus' (did you mean 'cpu'?)"),
        ((["echo"],), {"command": ["x"]}, "the command twice"),
        ((), {"queue": "ml"}, "needs a command"),
        ((Resources(),), {}, "takes a JobSpec, not a Resources"),
    ],
)
def test_anything_else_is_a_clear_type_error(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    recorder = Recorder()
    with pytest.raises(TypeError, match=re.escape(message)):
        sent(recorder, *args, **kwargs)
    assert recorder.requests == []  # nothing was sent


def test_submit_many_refuses_a_bare_command() -> None:
    with (
        Client(SERVER, "t", transport=httpx.MockTransport(Recorder())) as client,
        pytest.raises(TypeError, match="item 0 is a str"),
    ):
        client.submit_many(["echo", "hi"])  # type: ignore[list-item]


def test_the_sync_and_async_shells_send_the_same_requests() -> None:
    """Both are shells over one core: the same calls make the same HTTP requests."""

    def script_sync(client: Client | JsonClient) -> None:
        client.submit(["true"], job_set="s")
        client.submit_many([{"command": ["a"]}])
        client.get("J1")
        client.list(queue="ml", label=["a=b"], limit=5)
        client.cancel("J1", reason="r")
        client.cancel_job_set("ml", "s/1", ["QUEUED"])
        client.reprioritize("J1", 3)
        client.preempt("J1")
        client.retry("J1")
        client.job_events("J1")
        client.logs("J1", "stderr", run="J1-1")

    async def script_async(client: AsyncClient) -> None:
        await client.submit(["true"], job_set="s")
        await client.submit_many([{"command": ["a"]}])
        await client.get("J1")
        await client.list(queue="ml", label=["a=b"], limit=5)
        await client.cancel("J1", reason="r")
        await client.cancel_job_set("ml", "s/1", ["QUEUED"])
        await client.reprioritize("J1", 3)
        await client.preempt("J1")
        await client.retry("J1")
        await client.job_events("J1")
        await client.logs("J1", "stderr", run="J1-1")

    typed, plain, asynchronous = Recorder(), Recorder(), Recorder()
    with Client(SERVER, "t", transport=httpx.MockTransport(typed)) as client:
        script_sync(client)
    with JsonClient(SERVER, "t", transport=httpx.MockTransport(plain)) as json_client:
        script_sync(json_client)

    async def main() -> None:
        transport = httpx.MockTransport(asynchronous)
        async with AsyncClient(SERVER, "t", transport=transport) as client:
            await script_async(client)

    asyncio.run(main())
    assert len(typed.requests) == 11
    assert typed.requests == plain.requests == asynchronous.requests
