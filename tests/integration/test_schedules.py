"""Schedules (PRODUCT.md §14.2) on SQLite and PostgreSQL: one job per tick, even with two
schedulers racing; overlap and catch-up; the API and the leader's loop."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

from jobfleet.scheduling.periodic import ScheduleSpec
from jobfleet.store import Store
from jobfleet.store.schema import jobs, schedules
from tests.helpers import wait_for
from tests.integration.conftest import Api


def make(store: Store, **fields: Any) -> dict[str, Any]:
    spec = ScheduleSpec.model_validate({"name": "s", "job": {"command": ["true"]}, **fields})
    return store.create_schedule(spec, actor="ann")


def next_at(store: Store, name: str = "s") -> float:
    with store.read() as conn:
        return float(
            conn.execute(sa.select(schedules.c.next_at).where(schedules.c.name == name)).scalar()
        )


def tick_jobs(store: Store, name: str = "s") -> list[Any]:
    with store.read() as conn:
        return conn.execute(
            sa.select(jobs.c.id, jobs.c.state, jobs.c.scheduled_for, jobs.c.principal)
            .where(jobs.c.schedule == name)
            .order_by(jobs.c.scheduled_for)
        ).all()


def test_a_due_tick_submits_one_job_with_schedule_and_scheduled_for(store: Store) -> None:
    make(store, every="1m")
    tick = next_at(store)
    assert store.fire_schedules(tick - 1) == 0
    assert store.fire_schedules(tick + 1) == 1
    assert store.fire_schedules(tick + 1) == 0  # the next tick is a minute later
    (job,) = tick_jobs(store)
    assert job.scheduled_for == tick and job.principal == "ann"
    view = store.get_job(job.id)
    assert view["schedule"] == "s" and view["scheduled_for"] is not None
    assert next_at(store) == tick + 60


def test_two_schedulers_racing_on_one_tick_submit_one_job(store: Store, db_url: str) -> None:
    make(store, every="1m")
    tick = next_at(store)
    others = [Store(db_url) for _ in range(3)]
    barrier = threading.Barrier(len(others))
    fired: list[int] = []

    def fire(s: Store) -> None:
        barrier.wait()
        fired.append(s.fire_schedules(tick + 1))

    threads = [threading.Thread(target=fire, args=(s,)) for s in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in others:
        s.close()
    assert sum(fired) == 1
    assert len(tick_jobs(store)) == 1


def test_a_leader_that_died_after_submitting_the_tick_leaves_one_job(store: Store) -> None:
    make(store, every="1m")
    tick = next_at(store)
    with store.read() as conn:
        row = conn.execute(sa.select(schedules)).first()._mapping  # type: ignore[union-attr]
    store._fire(row, tick, actor="ann")  # submitted; next_at not advanced (the leader died)
    assert store.fire_schedules(tick + 1) == 0  # the new leader: the tick has its job
    assert len(tick_jobs(store)) == 1
    assert next_at(store) == tick + 60


def test_overlap_skip_waits_for_the_previous_job(store: Store) -> None:
    make(store, every="1m", overlap="skip")
    tick = next_at(store)
    store.fire_schedules(tick + 1)
    assert store.fire_schedules(tick + 61) == 0  # the first is still QUEUED: skipped
    store.cancel(tick_jobs(store)[0].id)
    assert store.fire_schedules(tick + 121) == 1
    assert len(tick_jobs(store)) == 2


def test_overlap_cancel_previous_and_allow(store: Store) -> None:
    make(store, every="1m", overlap="cancel_previous")
    tick = next_at(store)
    store.fire_schedules(tick + 1)
    store.fire_schedules(tick + 61)
    first, second = tick_jobs(store)
    assert (first.state, second.state) == ("CANCELLED", "QUEUED")
    events = store.job_events(first.id)
    assert events[-1]["requested_by"] == "schedule:s"
    make(store, name="a", every="1m")
    t = next_at(store, "a")
    store.fire_schedules(t + 1)
    store.fire_schedules(t + 61)
    assert [j.state for j in tick_jobs(store, "a")] == ["QUEUED", "QUEUED"]


def test_catchup_one_submits_one_job_for_the_missed_ticks_and_none_none(store: Store) -> None:
    make(store, name="one", every="1h")
    make(store, name="none", every="1h", catchup="none")
    later = next_at(store, "one") + 5 * 3600 + 600  # five hours down
    store.fire_schedules(later)
    assert len(tick_jobs(store, "one")) == 1
    assert len(tick_jobs(store, "none")) == 0
    assert next_at(store, "none") > later


def test_paused_fires_nothing_and_resume_starts_from_now(store: Store) -> None:
    make(store, every="1m", paused=True)
    assert store.schedule_view("s")["next_tick"] is None
    assert store.fire_schedules(10**10) == 0
    view = store.pause_schedule("s", False)
    assert view["next_tick"] is not None and not view["paused"]


def post(api: Api, **body: Any) -> Any:
    return api.http.post("/v1/schedules", json={"job": {"command": ["true"]}, **body})


def test_the_api_creates_lists_triggers_patches_and_deletes(api: Api) -> None:
    r = post(api, name="nightly", cron="0 3 * * *", timezone="Europe/Paris", overlap="skip")
    assert r.status_code == 201, r.text
    assert r.json()["next_tick"].endswith("T02:00:00Z")  # 03:00 in Paris, winter time
    assert post(api, name="nightly", cron="0 3 * * *").status_code == 409
    assert [s["name"] for s in api.http.get("/v1/schedules").json()["items"]] == ["nightly"]
    job = api.http.post("/v1/schedules/nightly/trigger").json()
    assert job["schedule"] == "nightly" and job["scheduled_for"]
    api.wait_state(job["id"], "SUCCEEDED")
    got = api.http.get("/v1/schedules/nightly").json()
    assert got["last_job"] == {
        "id": job["id"],
        "state": "SUCCEEDED",
        "scheduled_for": job["scheduled_for"],
    }
    patched = api.http.patch("/v1/schedules/nightly", json={"every": "1h"}).json()
    assert patched["every"] == 3600 and patched["cron"] is None
    assert api.http.post("/v1/schedules/nightly/pause").json()["paused"] is True
    assert api.http.post("/v1/schedules/nightly/resume").json()["paused"] is False
    bad = api.http.patch("/v1/schedules/nightly", json={"cron": "nope"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["cron"]
    assert api.http.delete("/v1/schedules/nightly").status_code == 204
    assert api.http.get("/v1/schedules/nightly").status_code == 404


def test_bad_schedules_are_refused_naming_the_field(api: Api) -> None:
    for body, field in (
        ({"name": "x", "cron": "*/5 * * *"}, "cron"),
        ({"name": "x", "cron": "*/5 * * * *", "timezone": "Nowhere/Land"}, "timezone"),
        ({"name": "x", "every": "5 parsecs"}, "every"),
        ({"name": "x", "every": "1m", "overlap": "sometimes"}, "overlap"),
    ):
        r = post(api, **body)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["loc"][0] == field
    assert api.http.get("/v1/schedules").json()["items"] == []


def test_the_leader_scheduler_fires_an_every_schedule(api: Api) -> None:
    assert post(api, name="fast", every="1s").status_code == 201

    def done() -> list[Any]:
        items = api.http.get("/v1/jobs", params={"schedule": "fast"}).json()["items"]
        return [j for j in items if j["state"] == "SUCCEEDED"]

    wait_for(done, timeout=30, what="a job of the schedule to succeed")
    api.http.post("/v1/schedules/fast/pause")
    items = api.http.get("/v1/jobs", params={"schedule": "fast"}).json()["items"]
    ticks = [j["scheduled_for"] for j in items]
    assert len(ticks) == len(set(ticks))  # one job per tick


def test_a_batch_of_ticks_with_one_fired_already_still_gives_one_job_each(store: Store) -> None:
    for name in ("a", "b", "c"):
        make(store, name=name, every="1m")
    with store.read() as conn:
        row = conn.execute(sa.select(schedules).where(schedules.c.name == "b")).first()
    store._fire(row._mapping, next_at(store, "b"), actor="ann")  # type: ignore[union-attr]
    latest = max(next_at(store, n) for n in "abc")
    assert store.fire_schedules(latest + 1) == 2
    assert [len(tick_jobs(store, n)) for n in "abc"] == [1, 1, 1]
