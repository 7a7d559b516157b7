"""Hostile input at the edge (issue 12, findings 1 and 4), on SQLite and PostgreSQL, real HTTP.

Every bad body is a 4xx (application/problem+json) naming the place of the refusal, and
nothing is stored; the scheduler goes on scheduling.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Api

DEEP = 3000
BIG = "9" * 400


def post_raw(api: Api, path: str, body: str) -> httpx.Response:
    return api.http.post(path, content=body, headers={"content-type": "application/json"})


def assert_refused(r: httpx.Response, *place: Any, status: int = 422) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if place:
        locs = [e["loc"] for e in r.json()["errors"]]
        assert any(loc[-len(place) :] == list(place) for loc in locs), locs
        assert str(place[-1]).lower() in r.json()["detail"].lower()  # the detail names it


def stored_nothing(api: Api) -> None:
    assert api.http.get("/v1/jobs").json()["items"] == []
    assert api.store.last_event_id() == 0


SUBMITS: list[tuple[str, str, tuple[Any, ...]]] = [
    (
        "backoff 1e400",
        '{"command":["true"],"retry":{"max_retries":1,"backoff":{"initial":1e400}}}',
        ("retry", "backoff", "initial"),
    ),
    ("backoff max NaN", '{"command":["true"],"retry":{"backoff":{"max":NaN}}}', ("max",)),
    ("timeout NaN", '{"command":["true"],"timeout":NaN}', ("timeout",)),
    ("timeout Infinity", '{"command":["true"],"timeout":Infinity}', ("timeout",)),
    (
        "ttl -Infinity",
        '{"command":["true"],"ttl_after_finished":-Infinity}',
        ("ttl_after_finished",),
    ),
    ("cpu 1e400", '{"command":["true"],"resources":{"cpu":1e400}}', ("resources", "cpu")),
    ("memory 1e400", '{"command":["true"],"resources":{"memory":1e400}}', ("resources", "memory")),
    ("memory 400 digits", f'{{"command":["true"],"resources":{{"memory":{BIG}}}}}', ("memory",)),
    ("memory '400 digits Gi'", f'{{"command":["true"],"resources":{{"memory":"{BIG}Gi"}}}}', ()),
    ("priority 400 digits", f'{{"command":["true"],"priority":{BIG}}}', ("priority",)),
    ("NUL in env value", '{"command":["true"],"env":{"K":"v\\u0000x"}}', ("env", "K")),
    ("NUL in env key", '{"command":["true"],"env":{"K\\u0000":"v"}}', ()),
    ("NUL in command", '{"command":["echo","a\\u0000b"]}', ("command", 1)),
    ("NUL in shell command", '{"shell":true,"command":"echo \\u0000"}', ("command",)),
    ("NUL in working_dir", '{"command":["true"],"working_dir":"/tmp/\\u0000"}', ("working_dir",)),
    ("NUL in job_set", '{"command":["true"],"job_set":"a\\u0000"}', ("job_set",)),
    ("NUL in label", '{"command":["true"],"labels":{"a":"\\u0000"}}', ("labels", "a")),
    ("NUL in client_id", '{"command":["true"],"client_id":"\\u0000"}', ("client_id",)),
    ("NUL in outputs", '{"command":["true"],"outputs":["a\\u0000"]}', ("outputs", 0)),
    ("surrogate in command", '{"command":["true\\ud800"]}', ("command", 0)),
    ("surrogate in label", '{"command":["true"],"labels":{"a":"\\ud800"}}', ("labels", "a")),
    (
        "surrogate in batch",
        '{"jobs":[{"command":["true"]},{"command":["\\udfff"]}]}',
        ("jobs", 1, "command", 0),
    ),
    ("nested 3000 deep", "[" * DEEP + "]" * DEEP, ()),
    (
        "labels nested deep",
        '{"command":["true"],"labels":' + '{"a":' * DEEP + "1" + "}" * (DEEP + 1),
        (),
    ),
    ("nested 40 deep", '{"command":["true"],"labels":' + '{"a":' * 40 + "1" + "}" * 41, ()),
]


def test_a_bad_submission_is_422_naming_the_field_and_stores_nothing(api: Api) -> None:
    for name, body, place in SUBMITS:  # one server for all (a stack per case costs seconds)
        try:
            assert_refused(post_raw(api, "/v1/jobs", body), *place)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    stored_nothing(api)


def test_one_refused_submission_does_not_stop_scheduling(api: Api) -> None:
    """Finding 1: `initial: 1e400` was stored as Infinity and every scheduling cycle failed."""
    bad = '{"command":["true"],"retry":{"max_retries":1,"backoff":{"initial":1e400}}}'
    assert_refused(post_raw(api, "/v1/jobs", bad))
    job = api.submit(command=["true"])
    api.wait_state(str(job["id"]), "SUCCEEDED")


def test_a_body_without_content_type_is_held_to_the_same_rules(api: Api) -> None:
    r = api.http.post("/v1/jobs", content='{"command":["true"],"timeout":NaN}')
    assert_refused(r, "timeout")
    stored_nothing(api)


def test_nul_bytes_in_the_query_or_path_are_422_not_500(api: Api) -> None:
    assert_refused(api.http.get("/v1/jobs", params={"queue": "a\x00b"}), "query", "queue")
    assert_refused(api.http.get("/v1/jobs", params={"job_set": "\x00"}), "query", "job_set")
    assert_refused(api.http.get("/v1/jobs/a%00b"), "path")
    assert_refused(api.http.get("/v1/jobs/a%00b/logs"), "path")


def test_out_of_range_resume_points_and_cursors_are_refused(api: Api) -> None:
    huge = "99999999999999999999999999"
    r = api.http.get("/v1/events", headers={"Last-Event-ID": huge})
    assert_refused(r, "header", "last-event-id")
    assert_refused(api.http.get("/v1/events", headers={"Last-Event-ID": "-1"}))
    assert_refused(api.http.get("/v1/events", params={"after": huge}), "query", "after")
    import base64

    cursor = base64.urlsafe_b64encode(f"s:{huge}".encode()).decode().rstrip("=")
    assert_refused(api.http.get("/v1/jobs", params={"cursor": cursor}), "query", "cursor")


# -- the worker protocol --------------------------------------------------------------------------


@pytest.fixture
def worker_http(api: Api) -> httpx.Client:
    token = api.store.issue_token("w-hostile", kind="worker").token
    http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    capacity = {"cpu_milli": 1000, "memory": 2**30}
    r = http.post("/v1/workers", json={"name": "w-hostile", "capacity": capacity})
    assert r.status_code == 201, r.text
    return http


FINISHED = {"run_id": "r1", "fencing": 1, "time": 1.0, "outcome": "failed"}
REPORTS: list[tuple[str, dict[str, Any] | str, tuple[Any, ...]]] = [
    (
        "unknown failure field",
        {"finished": [{**FINISHED, "failure": {"condition": "EXIT_NONZERO", "bogus": 1}}]},
        ("finished", 0, "failure", "bogus"),
    ),
    (
        "unknown condition",
        {"finished": [{**FINISHED, "failure": {"condition": "NOPE"}}]},
        ("failure", "condition"),
    ),
    ("unknown field", {"started": [{"run_id": "r1", "fencing": 1, "time": 1, "x": 1}]}, ("x",)),
    ("unknown top field", {"startd": []}, ("startd",)),
    (
        "bad outputs",
        {"finished": [{**FINISHED, "outputs": [{"path": "a", "size": -1}]}]},
        ("size",),
    ),
    ("fencing 10**30", {"started": [{"run_id": "r1", "fencing": 10**30, "time": 1}]}, ("fencing",)),
    ("time NaN", '{"started":[{"run_id":"r1","fencing":1,"time":NaN}]}', ("time",)),
    (
        "NUL in message",
        {"finished": [{**FINISHED, "failure": {"condition": "START_ERROR", "message": "\x00"}}]},
        ("message",),
    ),
]


def test_a_bad_worker_report_is_422_naming_the_field(api: Api, worker_http: httpx.Client) -> None:
    for name, body, place in REPORTS:
        text = body if isinstance(body, str) else json.dumps(body)
        r = worker_http.post(
            "/v1/workers/w-hostile/report",
            content=text,
            headers={"content-type": "application/json"},
        )
        try:
            assert_refused(r, *place)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


def test_bad_worker_registrations_are_422(api: Api, worker_http: httpx.Client) -> None:
    capacity = {"cpu_milli": 1000, "memory": 2**30}
    body = json.dumps({"name": "w2", "capacity": capacity, "info": {"x": 1}})
    for bad, place in [
        (body.replace('"x": 1', '"x": NaN'), ("info", "x")),
        (body.replace('"x": 1', f'"x": {BIG}'), ("info", "x")),
        (body.replace('"x": 1', '"x": "\\u0000"'), ("info", "x")),
        (body.replace('"w2"', '"w\\ud800"'), ("name",)),
    ]:
        r = worker_http.post(
            "/v1/workers", content=bad, headers={"content-type": "application/json"}
        )
        assert_refused(r, *place)
    names = [w["name"] for w in api.http.get("/v1/workers").json()["items"]]
    assert "w2" not in names
