"""Queues CRUD, job-set reprioritize and scheduling ingress checks over real HTTP."""

from __future__ import annotations

from tests.integration.conftest import Api


def test_queue_crud(api: Api) -> None:
    r = api.http.post(
        "/v1/queues",
        json={"name": "ml", "weight": 2, "max_running_jobs": 10, "max_resources": {"gpu": 4}},
    )
    assert r.status_code == 201, r.text
    q = r.json()
    assert (q["name"], q["weight"], q["max_running_jobs"]) == ("ml", 2, 10)
    assert q["max_resources"] == {"gpu": 4}
    assert api.http.post("/v1/queues", json={"name": "ml"}).status_code == 409
    names = [q["name"] for q in api.http.get("/v1/queues").json()["items"]]
    assert names == ["default", "ml"]
    r = api.http.patch("/v1/queues/ml", json={"weight": 3, "max_running_jobs": None})
    assert r.status_code == 200, r.text
    assert (r.json()["weight"], r.json()["max_running_jobs"]) == (3, None)
    assert r.json()["max_resources"] == {"gpu": 4}  # untouched
    assert api.http.get("/v1/queues/ml").json()["weight"] == 3
    assert api.http.delete("/v1/queues/ml").status_code == 204
    assert api.http.get("/v1/queues/ml").status_code == 404
    assert api.http.delete("/v1/queues/default").status_code == 409


def test_bad_queue_fields_are_refused_naming_them(api: Api) -> None:
    r = api.http.post("/v1/queues", json={"name": "x", "weight": 0, "colour": "red"})
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["errors"]]
    assert ["body", "weight"] in locs and ["body", "colour"] in locs
    r = api.http.patch("/v1/queues/default", json={"max_resources": {"memory": "lots"}})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][:3] == ["body", "max_resources", "memory"]
    assert api.http.get("/v1/queues").json()["items"][0]["max_resources"] is None


def test_a_queue_with_live_jobs_cannot_be_deleted(api: Api) -> None:
    assert api.http.post("/v1/queues", json={"name": "busy"}).status_code == 201
    job = api.submit(command=["sleep", "30"], queue="busy")
    r = api.http.delete("/v1/queues/busy")
    assert r.status_code == 409
    assert "have not ended" in r.json()["detail"]
    api.http.post(f"/v1/jobs/{job['id']}/cancel")
    api.wait_state(str(job["id"]), "CANCELLED")
    assert api.http.delete("/v1/queues/busy").status_code == 204
    r = api.http.post("/v1/jobs", json={"command": ["true"], "queue": "busy"})
    assert r.status_code == 422  # the deleted queue is gone for submissions too


def test_reprioritize_a_job_set(api: Api) -> None:
    jobs = [api.submit(command=["true"], job_set="s", resources={"cpu": 1000}) for _ in range(2)]
    r = api.http.post("/v1/job-sets/default/s/reprioritize", json={"priority": 9})
    assert r.status_code == 200, r.text
    assert r.json() == {"reprioritized": 2}
    for j in jobs:
        assert api.job(str(j["id"]))["priority"] == 9
    r = api.http.post("/v1/job-sets/default/s/reprioritize", json={"priority": "high"})
    assert r.status_code == 422


def test_unknown_priority_class_and_disagreeing_gang_members_are_refused(api: Api) -> None:
    r = api.http.post("/v1/jobs", json={"command": ["true"], "priority_class": "vip"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["priority_class"]
    assert "unknown priority class 'vip'" in r.json()["errors"][0]["msg"]
    gang = [
        {"command": ["true"], "gang": {"id": "g", "size": 2}},
        {"command": ["true"], "gang": {"id": "g", "size": 3}},
    ]
    r = api.http.post("/v1/jobs", json={"jobs": gang})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["jobs", 1, "gang", "size"]
    assert api.http.get("/v1/jobs").json()["items"] == []  # nothing stored
