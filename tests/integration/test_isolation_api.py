"""Isolation through the whole stack: API, scheduler and worker on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobfleet.config import Settings
from jobfleet.runtime import LocalStack
from jobfleet.store import Store
from tests.helpers import serve
from tests.integration.conftest import TOKEN, Api
from tests.integration.isolationkit import full_isolation


def _stack(store: Store, tmp_path: Path, **settings: Any) -> Iterator[Api]:
    full_isolation(tmp_path)  # skip where the machine cannot isolate fully
    config = Settings(
        lease_timeout=5, worker={"name": "iso-w", "grace": 2, "run_as": "root"}, **settings
    )
    store.create_token("admin", admin=True, token=TOKEN)
    stack = LocalStack(config, tmp_path / "data", store)
    stack.start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with serve(stack.app) as url, httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        yield Api(url, http, store, stack)
    stack.stop()


@pytest.fixture
def iso_api(store: Store, tmp_path: Path) -> Iterator[Api]:
    yield from _stack(store, tmp_path)


@pytest.fixture
def sealed_api(store: Store, tmp_path: Path) -> Iterator[Api]:
    yield from _stack(
        store, tmp_path, sealed=True, callbacks={"allow": ["https://hooks.lan/"], "secret": "s"}
    )


def test_the_worker_advertises_its_isolation(iso_api: Api) -> None:
    (worker,) = iso_api.store.list_workers()
    info = worker["info"]["isolation"]
    assert info["backend"] in ("cgroup1", "cgroup2")
    assert info["pid_namespace"] is True and info["network_namespace"] is True


def test_an_oom_killed_job_fails_with_oom_killed(iso_api: Api) -> None:
    alloc = "x = bytearray(200 * 2**20); x[::4096] = b'1' * len(x[::4096])"
    job = iso_api.submit(command=[sys.executable, "-c", alloc], resources={"memory": "64Mi"})
    done = iso_api.wait_state(str(job["id"]), "FAILED")
    assert done["failure"]["condition"] == "OOM_KILLED"  # type: ignore[index]


def test_logs_are_plain_by_default_and_timestamped_on_request(iso_api: Api) -> None:
    job = iso_api.submit(command=["sh", "-c", "echo a; echo b"], outputs=["*.none"])
    iso_api.wait_state(str(job["id"]), "SUCCEEDED")
    path = f"/v1/jobs/{job['id']}/logs"
    assert iso_api.http.get(path).text == "a\nb\n"
    stamped = iso_api.http.get(path, params={"timestamps": "true"}).text.splitlines()
    assert [re.sub(r"^\S+Z ", "", line) for line in stamped] == ["a", "b"]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ", x) for x in stamped)


def test_outputs_are_listed_on_the_run(iso_api: Api) -> None:
    job = iso_api.submit(command=["sh", "-c", "printf hello > result.txt"], outputs=["*.txt"])
    done = iso_api.wait_state(str(job["id"]), "SUCCEEDED")
    assert done["runs"][0]["outputs"] == [{"path": "result.txt", "size": 5}]  # type: ignore[index]


def test_a_followed_log_shows_a_line_within_a_second(iso_api: Api, tmp_path: Path) -> None:
    go, stop = tmp_path / "go", tmp_path / "stop"
    script = (
        f"while [ ! -e {go} ]; do sleep 0.02; done; echo hello; "
        f"while [ ! -e {stop} ]; do sleep 0.02; done"
    )
    job = iso_api.submit(command=["sh", "-c", script])
    iso_api.wait_state(str(job["id"]), "RUNNING")
    params = {"follow": "true"}
    with iso_api.http.stream("GET", f"/v1/jobs/{job['id']}/logs", params=params) as r:
        lines = r.iter_lines()
        assert next(lines).startswith(":")
        go.touch()
        touched = time.monotonic()
        data = next(line for line in lines if line.startswith("data:"))
        seen = time.monotonic() - touched
        assert json.loads(data[5:])["line"] == "hello"
        assert seen < 1.0, f"the line took {seen:.2f}s"
    stop.touch()
    iso_api.wait_state(str(job["id"]), "SUCCEEDED")


def test_a_sealed_deployment_refuses_remote_payloads_and_external_callbacks(
    sealed_api: Api,
) -> None:
    http = sealed_api.http
    r = http.post("/v1/jobs", json={"command": ["true"], "payload_uri": "https://x.org/a.tgz"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["payload_uri"]
    assert "sealed" in r.json()["errors"][0]["msg"]
    batch = {
        "jobs": [
            {"command": ["true"]},
            {"command": ["true"], "callback_url": "https://evil.example/hook"},
            {"command": ["true"], "payload_uri": "s3://bucket/key"},
        ]
    }
    r = http.post("/v1/jobs", json=batch)
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["errors"]] == [
        ["jobs", 1, "callback_url"],
        ["jobs", 2, "payload_uri"],
    ]
    assert http.get("/v1/jobs").json()["items"] == []  # nothing was stored
    ok = {"command": ["true"], "callback_url": "https://hooks.lan/done"}
    assert http.post("/v1/jobs", json=ok).status_code == 201
    local = {"command": ["true"], "callback_url": "http://127.0.0.1:9/x"}
    assert http.post("/v1/jobs", json=local).status_code == 201


def test_a_sealed_deployment_runs_every_job_without_network(sealed_api: Api) -> None:
    check = "import socket; print(sorted(n for _, n in socket.if_nameindex()))"
    job = sealed_api.submit(command=[sys.executable, "-c", check])
    sealed_api.wait_state(str(job["id"]), "SUCCEEDED")
    text = sealed_api.http.get(f"/v1/jobs/{job['id']}/logs").text
    assert text.strip() == "['lo']"
