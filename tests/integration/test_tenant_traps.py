"""Tenant traps (issue 12): on every route and page of the app — REST, SSE, dashboard, worker
protocol — a principal of queue A gets nothing of queue B's: no data, and no existence oracle
(the answer for B's real job, run, queue, job set or token is the answer for a made-up one).

The routes come from the app itself: a route with no trap case here fails the test, so a new
route cannot be forgotten. Findings 3 (the dashboard's log stream of another job's run) and 11
(`depends_on` naming another queue's job) are cases of it, with tests of their own below.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.conftest import Api

QA, QB = "qa-tenant", "qb-hidden"
FAKE_JOB = "01ZZZZZZZZZZZZZZZZZZZZZZZZ"
STREAM_READ = 1.2  # seconds of an SSE stream read (the fixture's heartbeat is 0.5 s)


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, mounts included (as "*")."""
    try:  # FastAPI ≥ 0.16x keeps included routers as routes of their own
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:  # pragma: no cover - older FastAPI: a flat list
        routes = list(app.routes)
    out = set()
    for r in routes:
        methods = sorted(set(r.methods or []) - {"HEAD"}) or ["*"]
        out |= {(m, str(r.path)) for m in methods}
    return out


@dataclass
class Probe:
    """One request, with placeholders: {job} {run} {queue} {job_set} {worker} {token} {own}
    {array} {schedule}."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    form: dict[str, Any] | None = None
    ui: bool = False  # sent with the dashboard's cookie instead of the bearer token


J = "/v1/jobs/{job}"
U = "/ui/jobs/{job}"
SUBMIT = {"queue": QA, "command": ["true"]}
JOB = {"command": ["true"]}
SCHEDULE = {"name": "a-new", "every": "1h", "paused": True, "job": {"queue": QA} | JOB}
TRAPS: dict[tuple[str, str], list[Probe]] = {
    ("GET", "/openapi.json"): [Probe("GET", "/openapi.json")],
    ("GET", "/docs"): [Probe("GET", "/docs")],
    ("GET", "/healthz"): [Probe("GET", "/healthz")],
    ("GET", "/readyz"): [Probe("GET", "/readyz")],
    ("GET", "/metrics"): [Probe("GET", "/metrics")],
    ("POST", "/v1/jobs"): [
        Probe("POST", "/v1/jobs", body={**SUBMIT, "depends_on": ["{job}"]}),
        Probe("POST", "/v1/jobs", body={**SUBMIT, "depends_on": [{"job_id": "{job}"}]}),
        Probe("POST", "/v1/jobs", body={"jobs": [{**SUBMIT, "depends_on": ["{job}"]}]}),
        Probe("POST", "/v1/jobs", body={**SUBMIT, "queue": "{queue}"}),
    ],
    ("GET", "/v1/jobs"): [
        Probe("GET", "/v1/jobs"),
        Probe("GET", "/v1/jobs", {"queue": "{queue}"}),
        Probe("GET", "/v1/jobs", {"job_set": "{job_set}"}),
        Probe("GET", "/v1/jobs", {"q": "{job}"}),
        Probe("GET", "/v1/jobs", {"label": "owner={job_set}"}),
    ],
    ("GET", "/v1/jobs/{job_id}"): [Probe("GET", J)],
    ("POST", "/v1/jobs/{job_id}/cancel"): [Probe("POST", J + "/cancel", body={})],
    ("POST", "/v1/jobs/{job_id}/reprioritize"): [
        Probe("POST", J + "/reprioritize", body={"priority": 1})
    ],
    ("POST", "/v1/jobs/{job_id}/preempt"): [Probe("POST", J + "/preempt")],
    ("POST", "/v1/jobs/{job_id}/retry"): [Probe("POST", J + "/retry")],
    ("POST", "/v1/job-sets/{queue}/{job_set}/cancel"): [
        Probe("POST", "/v1/job-sets/{queue}/{job_set}/cancel", body={})
    ],
    ("POST", "/v1/job-sets/{queue}/{job_set}/reprioritize"): [
        Probe("POST", "/v1/job-sets/{queue}/{job_set}/reprioritize", body={"priority": 1})
    ],
    ("GET", "/v1/jobs/{job_id}/events"): [Probe("GET", J + "/events")],
    ("GET", "/v1/jobs/{job_id}/history"): [Probe("GET", J + "/history")],
    ("GET", "/v1/events"): [
        Probe("GET", "/v1/events", {"after": 0}),
        Probe("GET", "/v1/events", {"after": 0, "queue": "{queue}"}),
        Probe("GET", "/v1/events", {"after": 0, "job_id": "{job}"}),
        Probe("GET", "/v1/events", {"after": 0, "job_set": "{job_set}"}),
    ],
    ("GET", "/v1/jobs/{job_id}/logs"): [
        Probe("GET", J + "/logs"),
        Probe("GET", J + "/logs", {"follow": "true"}),
        Probe("GET", J + "/logs", {"stream": "stderr"}),
        Probe("GET", "/v1/jobs/{own}/logs", {"run": "{run}"}),
        Probe("GET", "/v1/jobs/{own}/logs", {"run": "{run}", "follow": "true"}),
    ],
    ("GET", "/v1/jobs/{job_id}/callbacks"): [Probe("GET", J + "/callbacks")],
    ("GET", "/v1/jobs/{job_id}/errors"): [Probe("GET", J + "/errors")],
    ("GET", "/v1/jobs/{job_id}/checkpoints"): [Probe("GET", J + "/checkpoints")],
    ("POST", "/v1/auth/tokens"): [Probe("POST", "/v1/auth/tokens", body={"name": "{job_set}"})],
    ("GET", "/v1/auth/principals"): [Probe("GET", "/v1/auth/principals")],
    ("DELETE", "/v1/auth/tokens/{token_id}"): [Probe("DELETE", "/v1/auth/tokens/{token}")],
    ("GET", "/v1/auth/whoami"): [Probe("GET", "/v1/auth/whoami")],
    ("POST", "/v1/workers"): [
        Probe(
            "POST",
            "/v1/workers",
            body={"name": "{worker}", "capacity": {"cpu_milli": 1, "memory": 1}},
        )
    ],
    ("GET", "/v1/arrays/{array_id}"): [Probe("GET", "/v1/arrays/{array}")],
    ("POST", "/v1/arrays/{array_id}/cancel"): [Probe("POST", "/v1/arrays/{array}/cancel")],
    ("GET", "/ui/arrays/{array_id}"): [Probe("GET", "/ui/arrays/{array}", ui=True)],
    ("GET", "/v1/usage"): [
        Probe("GET", "/v1/usage", {"group_by": g}) for g in ("queue", "job_set", "principal")
    ],
    ("GET", "/v1/schedules"): [Probe("GET", "/v1/schedules")],
    # Schedule names are one namespace for all (like queue names): creating one under a name in
    # use answers 409 whoever holds it, so that probe is not made (docs/schedules.md says so).
    ("POST", "/v1/schedules"): [
        Probe("POST", "/v1/schedules", body=SCHEDULE | {"job": {"queue": "{queue}"} | JOB}),
    ],
    ("GET", "/v1/schedules/{name}"): [Probe("GET", "/v1/schedules/{schedule}")],
    ("PATCH", "/v1/schedules/{name}"): [
        Probe("PATCH", "/v1/schedules/{schedule}", body={"paused": False})
    ],
    ("DELETE", "/v1/schedules/{name}"): [Probe("DELETE", "/v1/schedules/{schedule}")],
    ("POST", "/v1/schedules/{name}/pause"): [Probe("POST", "/v1/schedules/{schedule}/pause")],
    ("POST", "/v1/schedules/{name}/resume"): [Probe("POST", "/v1/schedules/{schedule}/resume")],
    ("POST", "/v1/schedules/{name}/trigger"): [Probe("POST", "/v1/schedules/{schedule}/trigger")],
    ("GET", "/ui/schedules"): [Probe("GET", "/ui/schedules", ui=True)],
    ("POST", "/ui/schedules/{name}/{action}"): [
        Probe("POST", "/ui/schedules/{schedule}/" + a, ui=True)
        for a in ("pause", "resume", "trigger")
    ],
    ("POST", "/v1/workers/{name}/cordon"): [Probe("POST", "/v1/workers/{worker}/cordon")],
    ("POST", "/v1/workers/{name}/uncordon"): [Probe("POST", "/v1/workers/{worker}/uncordon")],
    ("POST", "/v1/workers/{name}/drain"): [
        Probe("POST", "/v1/workers/{worker}/drain", body={"timeout": "1s"})
    ],
    ("POST", "/v1/workers/{name}/sync"): [Probe("POST", "/v1/workers/{worker}/sync", body={})],
    ("POST", "/v1/workers/{name}/wait"): [
        Probe("POST", "/v1/workers/{worker}/wait", body={"timeout": 0})
    ],
    ("POST", "/v1/workers/{name}/report"): [
        Probe(
            "POST",
            "/v1/workers/{worker}/report",
            body={"started": [{"run_id": "{run}", "fencing": 1, "time": 1}]},
        )
    ],
    ("POST", "/v1/workers/{name}/logs"): [
        Probe("POST", "/v1/workers/{worker}/logs", body={"chunks": []})
    ],
    ("POST", "/v1/workers/{name}/state"): [
        Probe("POST", "/v1/workers/{worker}/state", body={"state": "DRAINING"})
    ],
    ("GET", "/v1/workers"): [Probe("GET", "/v1/workers")],
    ("GET", "/v1/shards"): [Probe("GET", "/v1/shards")],
    ("GET", "/v1/queues"): [Probe("GET", "/v1/queues")],
    ("POST", "/v1/queues"): [Probe("POST", "/v1/queues", body={"name": "{queue}"})],
    ("GET", "/v1/queues/{name}"): [Probe("GET", "/v1/queues/{queue}")],
    ("PATCH", "/v1/queues/{name}"): [Probe("PATCH", "/v1/queues/{queue}", body={"weight": 2})],
    ("DELETE", "/v1/queues/{name}"): [Probe("DELETE", "/v1/queues/{queue}")],
    # the dashboard, signed in as A
    ("*", "/ui/static"): [Probe("GET", "/ui/static/app.css", ui=True)],
    ("GET", "/ui/login"): [Probe("GET", "/ui/login", {"next": "/ui/jobs/{job}"}, ui=True)],
    ("POST", "/ui/login"): [Probe("POST", "/ui/login", form={"token": "{job}"}, ui=True)],
    ("POST", "/ui/logout"): [Probe("POST", "/ui/logout", ui=True)],
    ("GET", "/ui"): [Probe("GET", "/ui", ui=True)],
    ("GET", "/ui/"): [Probe("GET", "/ui/", ui=True)],
    ("GET", "/ui/overview/body"): [Probe("GET", "/ui/overview/body", ui=True)],
    ("GET", "/ui/overview/series"): [Probe("GET", "/ui/overview/series", ui=True)],
    ("GET", "/ui/jobs"): [
        Probe("GET", "/ui/jobs", ui=True),
        Probe("GET", "/ui/jobs", {"queue": "{queue}"}, ui=True),
        Probe("GET", "/ui/jobs", {"job_set": "{job_set}"}, ui=True),
        Probe("GET", "/ui/jobs", {"q": "{job}"}, ui=True),
        Probe("GET", "/ui/jobs", {"queue": "{queue}", "fragment": "true"}, ui=True),
    ],
    ("GET", "/ui/jobs/cancel"): [
        Probe("GET", "/ui/jobs/cancel", {"queue": "{queue}"}, ui=True),
        Probe("GET", "/ui/jobs/cancel", {"q": "{job}"}, ui=True),
    ],
    ("POST", "/ui/jobs/cancel"): [
        Probe("POST", "/ui/jobs/cancel", form={"expected": 1, "queue": "{queue}"}, ui=True),
        Probe("POST", "/ui/jobs/cancel", form={"expected": 1, "q": "{job}"}, ui=True),
    ],
    ("GET", "/ui/workers"): [Probe("GET", "/ui/workers", ui=True)],
    ("GET", "/ui/stream"): [
        Probe("GET", "/ui/stream", {"after": 1}, ui=True),
        Probe("GET", "/ui/stream", {"after": 1, "job_id": "{job}"}, ui=True),
        Probe("GET", "/ui/stream", {"after": 1, "queue": "{queue}"}, ui=True),
    ],
    ("GET", "/ui/jobs/{job_id}/logs/stream"): [
        Probe("GET", U + "/logs/stream", ui=True),
        Probe("GET", "/ui/jobs/{own}/logs/stream", {"run": "{run}"}, ui=True),
        Probe("GET", "/ui/jobs/{own}/logs/stream", {"run": "{run}", "stream": "stderr"}, ui=True),
    ],
    ("GET", "/ui/jobs/{job_id}"): [Probe("GET", U, ui=True)],
    ("GET", "/ui/jobs/{job_id}/panel"): [Probe("GET", U + "/panel", ui=True)],
    ("GET", "/ui/jobs/{job_id}/events"): [Probe("GET", U + "/events", ui=True)],
    ("GET", "/ui/jobs/{job_id}/log"): [
        Probe("GET", U + "/log", ui=True),
        Probe("GET", "/ui/jobs/{own}/log", {"run": "{run}"}, ui=True),
    ],
    ("POST", "/ui/jobs/{job_id}/actions/{action}"): [
        Probe("POST", U + "/actions/" + a, form={"priority": 1}, ui=True)
        for a in ("cancel", "reprioritize", "preempt", "retry")
    ],
}


@dataclass
class World:
    real: dict[str, str]  # B's values by placeholder
    fake: dict[str, str]  # made-up values, same placeholders
    secrets: list[str]  # what must never reach A


@pytest.fixture
def world(api: Api) -> World:
    for name in (QA, QB):
        api.store.upsert_queue(name, config={})
    script = "echo SECRET-B-OUT; echo SECRET-B-ERR >&2; exit 1"
    b = api.submit(
        queue=QB,
        job_set="setB-hidden",
        labels={"owner": "setB-hidden"},
        command=["sh", "-c", script],
    )
    b = api.wait_state(str(b["id"]), "FAILED")
    own = api.submit(queue=QA, command=["true"])
    api.wait_state(str(own["id"]), "SUCCEEDED")
    token = api.store.issue_token("bob-b", grants_=[(QB, "watch")])
    arr = api.http.post(
        "/v1/jobs",
        json={"queue": QB, "job_set": "arrB-hidden", "command": ["true"], "array": {"size": 2}},
    )
    assert arr.status_code == 201, arr.text
    sched = api.http.post(
        "/v1/schedules",
        json={"name": "sched-b-hidden", "every": "1h", "paused": True, "job": {"queue": QB} | JOB},
    )
    assert sched.status_code == 201, sched.text
    run = str(b["runs"][-1]["id"])  # type: ignore[index]
    real = {
        "job": str(b["id"]),
        "run": run,
        "queue": QB,
        "job_set": "setB-hidden",
        "worker": "w1",
        "token": token.id,
        "own": str(own["id"]),
        "array": str(arr.json()["array_id"]),
        "schedule": "sched-b-hidden",
    }
    fake = {
        **real,
        "job": FAKE_JOB,
        "run": FAKE_JOB + "-1",
        "queue": "qz-none",
        "job_set": "setZ-none",
        "worker": "w-none",
        "token": "0" * len(token.id),
        "array": "01YYYYYYYYYYYYYYYYYYYYYYYY",
        "schedule": "sched-none",
    }
    secrets = [real[k] for k in ("job", "run", "queue", "job_set", "array", "schedule")]
    secrets.append("SECRET-B")
    # the trap is armed: an admin does see B's job and its output
    assert "SECRET-B-OUT" in api.http.get(f"/v1/jobs/{real['job']}/logs").text
    return World(real, fake, secrets)


@pytest.fixture
def principal_a(api: Api, world: World) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(bearer client, signed-in dashboard client) of a principal with every verb on QA only."""
    verbs = ["submit", "cancel", "reprioritize", "preempt", "watch"]
    token = api.store.issue_token("alice-a", grants_=[(QA, v) for v in verbs]).token
    with (
        httpx.Client(
            base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as rest,
        httpx.Client(base_url=api.url, headers={"Origin": api.url}, timeout=30) as ui,
    ):
        assert ui.post("/ui/login", data={"token": token, "next": "/ui/"}).status_code == 303
        yield rest, ui


def fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values) if "{" in value else value
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    return value


def send(client: httpx.Client, probe: Probe, values: dict[str, str]) -> tuple[int, str]:
    """(status, text): a stream is read for STREAM_READ seconds, the rest whole."""
    kwargs: dict[str, Any] = {"params": fill(probe.params, values)}
    if probe.body is not None:
        kwargs["json"] = fill(probe.body, values)
    if probe.form is not None:
        kwargs["data"] = fill(probe.form, values)
    with client.stream(probe.method, fill(probe.path, values), **kwargs) as r:
        if "text/event-stream" not in r.headers.get("content-type", ""):
            return r.status_code, r.read().decode(errors="replace")
        text, deadline = "", time.monotonic() + STREAM_READ
        for chunk in r.iter_text():
            text += chunk
            if time.monotonic() > deadline or len(text) > 1 << 16:
                break
        return r.status_code, STREAM + text


STREAM = "<stream>"
KEYS = (
    "run",
    "job",
    "queue",
    "job_set",
    "worker",
    "token",
    "array",
    "schedule",
)  # a run id holds its job's id


def used(probe: Probe) -> list[str]:
    """The placeholders the probe fills in (the parts of B's a request names)."""
    text = json.dumps([probe.path, probe.params, probe.body, probe.form])
    return [k for k in KEYS if "{" + k + "}" in text]


def normalised(text: str, values: dict[str, str], keys: list[str]) -> str:
    for key in keys:
        text = text.replace(values[key], f"<{key}>")
    return text


# The operator's endpoint: counts per queue (by name), never a job's contents or id. Protect it
# with `metrics.auth: true` (docs/operations.md) where queue names are themselves secret.
SHARED = {("GET", "/metrics"): {"queue"}}


def leaks_of(world: World, real: str, fake: str, shared: set[str]) -> list[str]:
    """What the answer about B's shows that the answer about made-up names does not."""
    shown = ["SECRET-B"] if "SECRET-B" in real else []
    for key in sorted({"run", "job", "queue", "job_set", "array", "schedule"} - shared):
        if real.count(world.real[key]) > fake.count(world.fake[key]):
            shown.append(key)
    return shown


def test_every_route_has_a_trap_case(api: Api) -> None:
    routes = app_routes(api.stack.app)
    missing = sorted(routes - set(TRAPS))
    assert not missing, f"routes with no tenant-trap case in {__name__}.TRAPS: {missing}"
    stale = sorted(set(TRAPS) - routes)
    assert not stale, f"trap cases for routes the app no longer has: {stale}"


def test_a_principal_of_queue_a_gets_nothing_of_queue_b(
    api: Api, world: World, principal_a: tuple[httpx.Client, httpx.Client]
) -> None:
    rest, ui = principal_a
    leaks: list[str] = []
    for (method, route), probes in TRAPS.items():
        for probe in probes:
            client = ui if probe.ui else rest
            real_status, real_text = send(client, probe, world.real)
            fake_status, fake_text = send(client, probe, world.fake)
            where = f"{method} {route} as {probe.method} {probe.path} {probe.params or ''}"
            shown = leaks_of(world, real_text, fake_text, SHARED.get((method, route), set()))
            if shown:
                leaks.append(f"{where}: shows B's {shown}: {real_text[:300]!r}")
            keys = used(probe)
            if real_status != fake_status:
                leaks.append(f"{where}: {real_status} for B's, {fake_status} for a made-up one")
            elif keys and not real_text.startswith(STREAM):
                real_n = normalised(real_text, world.real, keys)
                if real_n != normalised(fake_text, world.fake, keys):
                    leaks.append(f"{where}: answers differ: {real_n[:300]!r}")
    assert not leaks, "\n".join(leaks)
    # nothing of B's changed either
    b = api.job(world.real["job"])
    assert (b["state"], b["priority"]) == ("FAILED", 0)
    b_jobs = api.http.get("/v1/jobs", params={"queue": QB, "job_set": "setB-hidden"}).json()
    assert [j["id"] for j in b_jobs["items"]] == [world.real["job"]]
    counts = api.http.get(f"/v1/arrays/{world.real['array']}").json()["counts"]
    assert "CANCELLED" not in counts, counts  # A's cancel of B's array did nothing
    schedule = api.http.get(f"/v1/schedules/{world.real['schedule']}").json()
    assert schedule["paused"] is True  # nor did its resume


# -- findings 3 and 11, on their own ------------------------------------------------------------


def test_the_dashboard_log_stream_refuses_another_jobs_run(
    world: World, principal_a: tuple[httpx.Client, httpx.Client]
) -> None:
    """Finding 3: `/ui/jobs/<own job>/logs/stream?run=<B's run>` streamed B's output."""
    _, ui = principal_a
    for stream in ("stdout", "stderr"):
        path = f"/ui/jobs/{world.real['own']}/logs/stream"
        with ui.stream("GET", path, params={"run": world.real["run"], "stream": stream}) as r:
            text = r.read().decode() if r.status_code != 200 else next(r.iter_text(), "")
            assert r.status_code == 404, text
            assert "SECRET-B" not in text


def test_depends_on_another_queues_job_answers_as_for_no_job(
    api: Api, world: World, principal_a: tuple[httpx.Client, httpx.Client]
) -> None:
    """Finding 11: 201 for a real id of another queue, 422 for a made-up one (an oracle)."""
    rest, _ = principal_a
    answers = []
    for job in (world.real["job"], world.fake["job"]):
        r = rest.post(
            "/v1/jobs", json={**SUBMIT, "depends_on": [{"job_id": job, "after": "failure"}]}
        )
        answers.append((r.status_code, r.text.replace(job, "<id>")))
    assert answers[0] == answers[1] and answers[0][0] == 422, answers
    assert (
        api.http.get("/v1/jobs", params={"queue": QA}).json()["items"][0]["id"] == world.real["own"]
    )  # nothing stored


def test_the_job_page_shows_no_state_of_a_hidden_dependency(
    api: Api, world: World, principal_a: tuple[httpx.Client, httpx.Client]
) -> None:
    """An admin may make a job of A's queue depend on B's: A's page names the id it was given,
    never how B's job ended."""
    dep = api.submit(
        queue=QA, command=["true"], depends_on=[{"job_id": world.real["job"], "after": "any"}]
    )
    api.wait_state(str(dep["id"]), "SUCCEEDED")
    _, ui = principal_a
    panel = ui.get(f"/ui/jobs/{dep['id']}/panel").text
    assert world.real["job"] in panel  # its own spec says so
    assert "now FAILED" not in panel
    with_admin = api.store.jobs_brief([world.real["job"]])
    assert with_admin == {world.real["job"]: "FAILED"}
