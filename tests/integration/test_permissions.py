"""Principals with per-queue verbs, over real HTTP, on SQLite and PostgreSQL.

Queue `ml` is the caller's; queue `secret` is one it has no verb on. A job of `secret` must
be invisible to it everywhere (404 or absent), and every action needs its verb.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from jobfleet.server.permissions import WorkerCaller
from tests.integration.conftest import Api

ALL = ["submit", "cancel", "reprioritize", "preempt", "watch"]


def new_token(api: Api, name: str, **body: Any) -> dict[str, Any]:
    r = api.http.post("/v1/auth/tokens", json={"name": name, **body})
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


def client(api: Api, token: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture
def queues(api: Api) -> None:
    for name in ("ml", "secret"):
        api.store.upsert_queue(name, config={})


@pytest.fixture
def as_user(api: Api, queues: None) -> Iterator[httpx.Client]:
    """A principal with every verb on `ml` and none on `secret`."""
    token = new_token(api, "alice", queues=["ml"], verbs=ALL)["token"]
    with client(api, token) as http:
        yield http


def user_with(api: Api, *verbs: str) -> httpx.Client:
    token = new_token(api, f"u-{'-'.join(verbs)}", queues=["ml"], verbs=list(verbs))["token"]
    return client(api, token)


def hidden_job(api: Api, **spec: Any) -> str:
    return str(api.submit(queue="secret", command=["true"], **spec)["id"])


def assert_404(r: httpx.Response) -> None:
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"


# -- tokens and the /v1/auth routes ------------------------------------------------------------


def test_a_token_is_shown_once_and_listed_only_by_id_and_prefix(api: Api, queues: None) -> None:
    made = new_token(api, "bob", queues=["ml"], verbs=["watch", "submit"])
    assert made["token"].startswith("jf_") and len(made["token"]) > 40
    assert made["principal"]["grants"] == [
        {"queue": "ml", "verb": "submit"},
        {"queue": "ml", "verb": "watch"},
    ]
    listing = api.http.get("/v1/auth/principals").json()["items"]
    assert made["token"] not in json.dumps(listing)
    bob = next(p for p in listing if p["name"] == "bob")
    assert bob["tokens"] == [
        {
            "id": made["id"],
            "prefix": made["token"][:8],
            "created_at": bob["tokens"][0]["created_at"],
        }
    ]
    with client(api, made["token"]) as http:
        assert http.get("/v1/auth/whoami").json()["name"] == "bob"


def test_only_an_admin_may_manage_tokens(api: Api, as_user: httpx.Client) -> None:
    r = as_user.post("/v1/auth/tokens", json={"name": "eve", "admin": True})
    assert r.status_code == 403 and "not an admin" in r.json()["detail"]
    assert as_user.get("/v1/auth/principals").status_code == 403
    assert "eve" not in json.dumps(api.http.get("/v1/auth/principals").json())


def test_a_revoked_token_is_refused_at_once(api: Api, queues: None) -> None:
    made = new_token(api, "carol", queues=["ml"], verbs=["watch"])
    with client(api, made["token"]) as http:
        assert http.get("/v1/jobs").status_code == 200
        assert api.http.delete(f"/v1/auth/tokens/{made['id']}").status_code == 200
        assert http.get("/v1/jobs").status_code == 401


def test_bad_token_requests_are_422_naming_the_field(api: Api) -> None:
    r = api.http.post("/v1/auth/tokens", json={"name": "w", "worker": True, "queues": ["ml"]})
    assert r.status_code == 422 and "worker token" in r.text
    r = api.http.post("/v1/auth/tokens", json={"name": "x", "queues": ["ml"], "verbs": ["fly"]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][:2] == ["body", "verbs"]
    assert api.store.list_principals() == [p for p in api.store.list_principals() if p["admin"]]


# -- worker tokens -------------------------------------------------------------------------------


def test_a_worker_token_is_403_everywhere_but_the_worker_routes(api: Api) -> None:
    probe = APIRouter()

    @probe.get("/v1/workers/_probe")
    async def _probe(who: WorkerCaller) -> dict[str, str]:
        return {"worker": who.name}

    api.stack.app.include_router(probe)
    made = new_token(api, "w1-host", worker=True)
    assert made["token"].startswith("jfw_")
    job = api.submit(command=["true"])
    with client(api, made["token"]) as http:
        assert http.get("/v1/workers/_probe").json() == {"worker": "w1-host"}
        for method, path in [
            ("GET", "/v1/jobs"),
            ("GET", f"/v1/jobs/{job['id']}"),
            ("POST", "/v1/jobs"),
            ("GET", "/v1/events"),
            ("GET", "/v1/auth/principals"),
            ("POST", f"/v1/jobs/{job['id']}/cancel"),
        ]:
            r = http.request(method, path, json={"command": ["true"]})
            assert r.status_code == 403, (method, path, r.text)
            assert "worker token" in r.json()["detail"]
    with user_with(api, "watch") as http:
        assert http.get("/v1/workers/_probe").status_code == 403


# -- submit -------------------------------------------------------------------------------------


def test_submit_to_a_queue_without_the_verb_is_403_naming_queue_and_verb(
    api: Api, as_user: httpx.Client
) -> None:
    assert as_user.post("/v1/jobs", json={"queue": "ml", "command": ["true"]}).status_code == 201
    r = as_user.post("/v1/jobs", json={"queue": "secret", "command": ["true"]})
    assert r.status_code == 403
    assert r.json()["queue"] == "secret" and r.json()["verb"] == "submit"
    assert "'secret'" in r.json()["detail"] and "submit" in r.json()["detail"]
    with user_with(api, "watch") as watcher:
        r = watcher.post("/v1/jobs", json={"queue": "ml", "command": ["true"]})
        assert r.status_code == 403 and r.json()["verb"] == "submit"


def test_a_batch_with_one_forbidden_queue_stores_nothing(api: Api, as_user: httpx.Client) -> None:
    jobs = [{"queue": "ml", "command": ["true"]}, {"queue": "secret", "command": ["true"]}]
    r = as_user.post("/v1/jobs", json={"jobs": jobs})
    assert r.status_code == 403
    assert api.http.get("/v1/jobs").json()["items"] == []


# -- what a hidden queue's job looks like: not there -------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/events", "/history", "/logs", "/logs?follow=true"])
def test_reading_a_job_of_a_hidden_queue_is_404(
    api: Api, as_user: httpx.Client, suffix: str
) -> None:
    job_id = hidden_job(api)
    r = as_user.get(f"/v1/jobs/{job_id}{suffix}")
    assert_404(r)
    assert r.json()["detail"] == as_user.get(f"/v1/jobs/NOSUCHJOB{suffix}").json()[
        "detail"
    ].replace("NOSUCHJOB", job_id)


@pytest.mark.parametrize("action", ["cancel", "reprioritize", "preempt", "retry"])
def test_acting_on_a_job_of_a_hidden_queue_is_404_and_changes_nothing(
    api: Api, as_user: httpx.Client, action: str
) -> None:
    job = api.submit(queue="secret", command=["sleep", "30"])
    job_id = str(job["id"])
    api.wait_state(job_id, "RUNNING")
    body = {"priority": 5} if action == "reprioritize" else None
    assert_404(as_user.post(f"/v1/jobs/{job_id}/{action}", json=body))
    after = api.job(job_id)
    assert (after["state"], after["priority"]) == ("RUNNING", 0)
    assert not after["cancel_requested"] and not after["preempt_requested"]
    api.http.post(f"/v1/jobs/{job_id}/cancel")


def test_lists_leave_out_hidden_queues(api: Api, as_user: httpx.Client) -> None:
    mine = as_user.post("/v1/jobs", json={"queue": "ml", "command": ["true"]}).json()["id"]
    hidden = hidden_job(api)
    assert {j["id"] for j in api.http.get("/v1/jobs").json()["items"]} == {mine, hidden}
    assert [j["id"] for j in as_user.get("/v1/jobs").json()["items"]] == [mine]
    assert as_user.get("/v1/jobs", params={"queue": "secret"}).json()["items"] == []
    assert as_user.get("/v1/jobs", params={"q": hidden}).json()["items"] == []


def _stream_until(
    http: httpx.Client, params: dict[str, Any], last_job: str
) -> list[dict[str, Any]]:
    """Events from the global stream until `last_job` succeeded (everything before it came)."""
    out: list[dict[str, Any]] = []
    with http.stream("GET", "/v1/events", params=params) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                out.append(event)
                if event["job_id"] == last_job and event["type"] == "succeeded":
                    return out
    raise AssertionError("the stream ended")


def test_the_event_stream_leaves_out_hidden_queues(api: Api, as_user: httpx.Client) -> None:
    hidden = [hidden_job(api) for _ in range(3)]
    mine = [as_user.post("/v1/jobs", json={"queue": "ml", "command": ["true"]}).json()["id"]]
    for job_id in hidden + mine:
        api.wait_state(job_id, "SUCCEEDED")
    marker = as_user.post("/v1/jobs", json={"queue": "ml", "command": ["true"]}).json()["id"]
    api.wait_state(marker, "SUCCEEDED")
    seen = _stream_until(as_user, {}, marker)
    assert {e["queue"] for e in seen} == {"ml"}
    expected = [e["id"] for e in api.store.events_after(0, limit=10_000) if e["queue"] == "ml"]
    assert [e["id"] for e in seen] == expected
    # asking for the hidden queue, or for a hidden job, by name gives nothing either
    seen = _stream_until(as_user, {"queue": ["secret", "ml"]}, marker)
    assert {e["queue"] for e in seen} == {"ml"}
    seen = _stream_until(as_user, {"job_id": [hidden[0], marker]}, marker)
    assert {e["job_id"] for e in seen} == {marker}


# -- each verb -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "action", "body"),
    [
        ("cancel", "cancel", None),
        ("reprioritize", "reprioritize", {"priority": 7}),
        ("preempt", "preempt", None),
    ],
)
def test_each_action_needs_its_verb(
    api: Api, queues: None, verb: str, action: str, body: dict[str, Any] | None
) -> None:
    job_id = str(api.submit(queue="ml", command=["sleep", "30"])["id"])
    api.wait_state(job_id, "RUNNING")
    others = [v for v in ALL if v != verb]
    with user_with(api, *others) as without, user_with(api, verb) as with_:
        r = without.post(f"/v1/jobs/{job_id}/{action}", json=body)
        assert r.status_code == 403, r.text
        assert (r.json()["queue"], r.json()["verb"]) == ("ml", verb)
        assert with_.get(f"/v1/jobs/{job_id}").status_code == 200  # any verb lets it see
        r = with_.post(f"/v1/jobs/{job_id}/{action}", json=body)
        assert r.status_code in (200, 202), r.text
    api.http.post(f"/v1/jobs/{job_id}/cancel")


def test_retry_as_new_needs_submit(api: Api, queues: None) -> None:
    job_id = str(api.submit(queue="ml", command=["false"])["id"])
    api.wait_state(job_id, "FAILED")
    with user_with(api, "watch", "cancel") as without, user_with(api, "submit") as with_:
        r = without.post(f"/v1/jobs/{job_id}/retry")
        assert r.status_code == 403 and r.json()["verb"] == "submit"
        assert with_.post(f"/v1/jobs/{job_id}/retry").json()["retry_of"] == job_id


def test_job_set_cancel_needs_cancel_on_the_queue(api: Api, as_user: httpx.Client) -> None:
    job = api.submit(queue="secret", job_set="s", command=["sleep", "30"])
    r = as_user.post("/v1/job-sets/secret/s/cancel")
    assert r.status_code == 403
    assert (r.json()["queue"], r.json()["verb"]) == ("secret", "cancel")
    assert api.job(str(job["id"]))["state"] != "CANCELLED"
    assert api.http.post("/v1/job-sets/secret/s/cancel").status_code == 200
    with user_with(api, "watch") as watcher:
        assert watcher.post("/v1/job-sets/ml/s/cancel").status_code == 403


def test_a_grant_on_star_covers_every_queue(api: Api, queues: None) -> None:
    token = new_token(api, "ops", queues=["*"], verbs=["watch"])["token"]
    job_id = hidden_job(api)
    with client(api, token) as http:
        assert http.get(f"/v1/jobs/{job_id}").status_code == 200
        assert [j["id"] for j in http.get("/v1/jobs").json()["items"]] == [job_id]
        assert http.post(f"/v1/jobs/{job_id}/cancel").status_code in (403, 409)
