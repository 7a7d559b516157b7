"""Usage accounting (PRODUCT.md §14.3), on SQLite and PostgreSQL: resources x time of runs,
clipped to the window, grouped; a principal sees only its queues."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from jobfleet.config import QueueConfig
from jobfleet.models import JobSpec
from jobfleet.store import Store, UsageQuery
from jobfleet.store.base import insert_many
from jobfleet.store.schema import runs, usage_hours
from tests.integration.conftest import Api

GI = 2**30
T0 = 1_000_000.0  # the window is [T0, T0 + 1000)


def add_run(
    store: Store,
    job_id: str,
    n: int,
    *,
    state: str,
    started: float | None,
    finished: float | None,
    worker: str = "w1",
    cpu: int = 2000,
    memory: int = GI,
    gpu: int = 1,
) -> None:
    row = {
        "id": f"{job_id}-{n}",
        "job_id": job_id,
        "attempt": n,
        "state": state,
        "shard": "default",
        "worker": worker,
        "fencing": n,
        "lease_expires_at": 0.0,
        "cpu_milli": cpu,
        "memory": memory,
        "gpu": gpu,
        "created_at": (started or T0) - 1,
        "started_at": started,
        "finished_at": finished,
    }
    with store.tx() as conn:
        insert_many(conn, runs, [row])


@pytest.fixture
def filled(store: Store) -> Store:
    store.create_queue(QueueConfig(name="ml"))
    a, b = store.submit([JobSpec(command=["x"]), JobSpec(command=["y"], queue="ml")], actor="ann")
    add_run(store, a, 1, state="SUCCEEDED", started=T0 + 100, finished=T0 + 200)  # 100 s in
    add_run(store, a, 2, state="SUCCEEDED", started=T0 - 50, finished=T0 + 50)  # 50 s in
    add_run(store, a, 3, state="LOST", started=T0 + 10, finished=T0 + 40)  # lost: until its end
    add_run(store, a, 4, state="SUCCEEDED", started=T0 - 90, finished=T0 - 10)  # before
    add_run(store, a, 5, state="LOST", started=None, finished=T0 + 5)  # never ran
    add_run(store, b, 1, state="RUNNING", started=T0 + 990, finished=None, worker="w2")  # 10 s
    add_run(store, b, 2, state="PREEMPTED", started=T0 + 500, finished=T0 + 520, worker="w2")
    return store


def by_group(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["group"]: i for i in items}


def test_runs_count_their_reserved_resources_times_time_clipped_to_the_window(
    filled: Store,
) -> None:
    got = by_group(filled.usage(UsageQuery(T0, T0 + 1000, "queue")))
    assert got["default"] == {
        "group": "default",
        "runs": 3,
        "succeeded": 2,
        "failed": 1,
        "cpu_seconds": 2 * 180.0,
        "memory_gib_seconds": 180.0,
        "gpu_seconds": 180.0,
        "wall_seconds": 180.0,
    }
    assert got["ml"]["runs"] == 2
    assert got["ml"]["wall_seconds"] == 30.0  # 10 s of the running one, 20 of the preempted
    assert got["ml"]["succeeded"] == got["ml"]["failed"] == 0


def test_group_by_worker_principal_shard_and_job_set(filled: Store) -> None:
    window = (T0, T0 + 1000)
    assert {
        g: i["wall_seconds"]
        for g, i in by_group(filled.usage(UsageQuery(*window, "worker"))).items()
    } == {
        "w1": 180.0,
        "w2": 30.0,
    }
    principals = by_group(filled.usage(UsageQuery(*window, "principal")))
    assert set(principals) == {"ann"} and principals["ann"]["runs"] == 5
    assert set(by_group(filled.usage(UsageQuery(*window, "shard")))) == {"default"}
    assert set(by_group(filled.usage(UsageQuery(*window, "job_set")))) == {
        "default/default",
        "ml/default",
    }


def test_only_visible_queues_count(filled: Store) -> None:
    got = filled.usage(UsageQuery(T0, T0 + 1000, "worker", visible=["ml"]))
    assert by_group(got).keys() == {"w2"}
    assert filled.usage(UsageQuery(T0, T0 + 1000, "queue", visible=[])) == []


def test_usage_api_window_and_errors(api: Api) -> None:
    job = api.submit(command=["true"])
    api.wait_state(str(job["id"]), "SUCCEEDED")
    r = api.http.get("/v1/usage", params={"since": "1h", "group_by": "queue"})
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    assert item["group"] == "default" and item["runs"] == 1 and item["succeeded"] == 1
    assert item["wall_seconds"] > 0
    bad = api.http.get("/v1/usage", params={"since": "1h", "until": "2h"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["query", "until"]
    bad = api.http.get("/v1/usage", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "since"]
    bad = api.http.get("/v1/usage", params={"group_by": "colour"})
    assert bad.status_code == 422


def test_a_principal_sees_only_its_queues(api: Api) -> None:
    api.store.create_queue(QueueConfig(name="ml"))
    job = api.submit(command=["true"])
    api.wait_state(str(job["id"]), "SUCCEEDED")
    token = api.store.issue_token("bob", grants_=[("ml", "watch")]).token
    with httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as bob:
        r = bob.get("/v1/usage", params={"since": "1h"})
        assert r.status_code == 200, r.text
        assert r.json()["items"] == []  # the run in `default` is not bob's to see
    everything = api.http.get("/v1/usage", params={"since": "1h"}).json()["items"]
    assert [i["group"] for i in everything] == ["default"]


def test_whole_hours_come_from_the_roll_up_and_agree_with_the_runs(store: Store) -> None:
    b = 3600.0 * 1000  # an hour boundary, long ago: every hour is rolled up
    (a,) = store.submit([JobSpec(command=["x"])], actor="ann")
    spans = [
        (b + 3700, b + 3800),  # whole hour 1, began inside the window: rolled up
        (b + 1000, b + 7300),  # hour 2, began before the window: that hour is read from runs
        (b + 7400, b + 7500),  # hour 2 too
        (b + 10900, b + 11000),  # hour 3: rolled up
        (b + 14000, b + 14500),  # ended after the last whole hour: from runs
        (b + 100, b + 500),  # ended before the window
        (b + 16000, None),  # still running
    ]
    for n, (started, finished) in enumerate(spans, 1):
        state = "RUNNING" if finished is None else "SUCCEEDED"
        add_run(store, a, n, state=state, started=started, finished=finished)
    got = store.usage(UsageQuery(b + 1800, b + 4 * 3600 + 1800, "queue"))
    assert store.roll_up_usage() > b + 4 * 3600
    with store.read() as conn:
        rolled = conn.execute(sa.select(sa.func.count()).select_from(usage_hours)).scalar()
    assert rolled == 5  # one row per hour with an ended run
    (item,) = got
    assert item["runs"] == 6
    assert item["wall_seconds"] == 100 + 5500 + 100 + 100 + 500 + 200
    assert item["cpu_seconds"] == 2 * item["wall_seconds"]
    assert item["succeeded"] == 5


def test_the_roll_up_goes_a_week_at_a_time_and_the_answer_does_not_change(store: Store) -> None:
    b = 3600.0 * 1000
    (a,) = store.submit([JobSpec(command=["x"])], actor="ann")
    for n in range(1, 22):  # a run a day for three weeks
        start = b + n * 86400
        add_run(store, a, n, state="SUCCEEDED", started=start, finished=start + 600)
    window = UsageQuery(b, b + 30 * 86400, "queue")
    first = store.usage(window)  # rolls up the first week only
    with store.read() as conn:
        rolled = conn.execute(sa.select(sa.func.count()).select_from(usage_hours)).scalar()
    assert rolled == 7  # the first week from the first run that ended: days 1..7
    for _ in range(5):
        store.roll_up_usage()
    assert store.usage(window) == first
    assert first[0]["runs"] == 21 and first[0]["wall_seconds"] == 21 * 600
