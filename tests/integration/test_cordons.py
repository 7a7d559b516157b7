"""Cordon and drain (PRODUCT.md §14.4), on SQLite and PostgreSQL, with the local worker."""

from __future__ import annotations

import pytest

from jobfleet.errors import NotFound
from jobfleet.protocol import Capacity
from jobfleet.store import Store
from tests.helpers import wait_for
from tests.integration.conftest import Api

GI = 2**30


def worker(api: Api, name: str = "w1") -> dict[str, object]:
    items = api.http.get("/v1/workers").json()["items"]
    return next(w for w in items if w["name"] == name)


def test_a_cordoned_worker_gets_no_lease_until_uncordoned(api: Api) -> None:
    r = api.http.post("/v1/workers/w1/cordon")
    assert r.status_code == 200, r.text
    w = worker(api)
    assert w["state"] == "CORDONED"
    assert w["cordon"]["requested_by"] == "admin"  # type: ignore[index]
    job = api.submit(command=["true"])
    job_id = str(job["id"])
    got = wait_for(
        lambda: (j := api.job(job_id))["scheduling_reason"] and j, what="a scheduling reason"
    )
    assert got["state"] in ("QUEUED", "SCHEDULED")
    assert not got["runs"]
    assert api.http.post("/v1/workers/w1/uncordon").status_code == 200
    assert worker(api)["state"] == "READY"
    api.wait_state(job_id, "SUCCEEDED")


def test_drain_evicts_after_its_timeout_uncounted_and_says_who_asked(api: Api) -> None:
    script = '[ "$JOBFLEET_ATTEMPT" = 1 ] && exec sleep 60; true'
    job = api.submit(command=["sh", "-c", script], retry={"max_retries": 0})
    job_id = str(job["id"])
    api.wait_state(job_id, "RUNNING")
    r = api.http.post("/v1/workers/w1/drain", json={"timeout": "0.5s"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "DRAINING" and r.json()["evict_at"]
    assert worker(api)["state"] == "DRAINING"

    def requeued() -> dict[str, object] | None:
        items = api.http.get(f"/v1/jobs/{job_id}/events").json()["items"]
        return next((e for e in items if e["type"] == "requeued"), None)

    event = wait_for(requeued, timeout=30, what="the evicted job to be requeued")
    assert event["cause"] == "evicted"
    assert event["requested_by"] == "admin"
    assert "drained by admin" in str(event["reason"])
    assert event["failure"]["condition"] == "EVICTED"  # type: ignore[index]
    assert api.job(job_id)["state"] in ("QUEUED", "SCHEDULED")  # not on the drained worker
    api.http.post("/v1/workers/w1/uncordon")
    done = api.wait_state(job_id, "SUCCEEDED", timeout=30)
    assert done["attempt"] == 2  # max_retries 0, yet retried: an eviction is not counted


def test_unknown_worker_is_404_and_a_bad_timeout_422(api: Api) -> None:
    assert api.http.post("/v1/workers/nope/cordon").status_code == 404
    r = api.http.post("/v1/workers/w1/drain", json={"timeout": "soon"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][-1] == "timeout"


def test_a_cordon_outlives_the_workers_restart(store: Store) -> None:
    store.register_worker("w9", "default", Capacity(4000, 8 * GI, 0))
    store.cordon("w9", actor="ops")
    store.register_worker("w9", "default", Capacity(4000, 8 * GI, 0))
    assert {w["name"]: w["state"] for w in store.list_workers()}["w9"] == "CORDONED"
    assert store.cordons()["w9"]["requested_by"] == "ops"
    store.uncordon("w9", actor="ops")
    assert {w["name"]: w["state"] for w in store.list_workers()}["w9"] == "READY"
    with pytest.raises(NotFound):
        store.cordon("nope", actor="ops")


def test_a_cordon_outlives_a_retire_and_the_next_registration(store: Store) -> None:
    """`jobfleet up` retires a worker it restarts (OFFLINE): its cordon comes back with it."""
    store.register_worker("w8", "default", Capacity(4000, 8 * GI, 0), identity="id-1")
    store.cordon("w8", actor="ops")
    store.retire_worker("w8", "id-1")
    assert {w["name"]: w["state"] for w in store.list_workers()}["w8"] == "OFFLINE"
    store.register_worker("w8", "default", Capacity(4000, 8 * GI, 0), identity="id-1")
    assert {w["name"]: w["state"] for w in store.list_workers()}["w8"] == "CORDONED"
    assert store.cordons()["w8"]["requested_by"] == "ops"
