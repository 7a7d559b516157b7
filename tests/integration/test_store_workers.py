"""Workers, leases and reports: fencing, a run never ends twice, lost leases, re-registration,
heartbeats (PRODUCT.md §3, §6, §8)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from jobfleet.failures import Condition, FailureInfo
from jobfleet.protocol import Assignment, Finished, Started
from jobfleet.store import Store
from jobfleet.store.schema import events, jobs, runs
from tests.integration.storekit import (
    CAPACITY,
    SHARD,
    WORKER,
    lease_one,
    rooms,
    schedule_cycle,
    spec,
    start,
)


def succeeded(a: Assignment, *, fencing: int | None = None) -> Finished:
    return Finished(
        a.run_id, a.fencing if fencing is None else fencing, "succeeded", time.time(), 0
    )


def failed(a: Assignment) -> Finished:
    return Finished(
        a.run_id,
        a.fencing,
        "failed",
        time.time(),
        exit_code=1,
        failure=FailureInfo(condition=Condition.EXIT_NONZERO, exit_code=1),
    )


def snapshot(store: Store) -> tuple[list[Any], list[Any], list[Any]]:
    """Every job, run and event row: to show a refused report changed nothing."""
    with store.read() as conn:
        return (
            [tuple(r) for r in conn.execute(sa.select(jobs).order_by(jobs.c.seq))],
            [tuple(r) for r in conn.execute(sa.select(runs).order_by(runs.c.id))],
            [tuple(r) for r in conn.execute(sa.select(events).order_by(events.c.id))],
        )


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met before the deadline"


def wait_past(t: float) -> None:
    """Until the wall clock (the store's clock) is strictly past `t`."""
    wait_until(lambda: time.time() > t)


def run_row(store: Store, run_id: str) -> dict[str, Any]:
    with store.read() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).one()
    return dict(row._mapping)


@pytest.fixture
def worker(store: Store) -> str:
    store.register_worker(WORKER, SHARD, CAPACITY)
    return WORKER


# -- fencing --------------------------------------------------------------------------------


def test_fencing_tokens_are_distinct_and_grow(store: Store, worker: str) -> None:
    store.submit([spec() for _ in range(3)])
    schedule_cycle(store)
    first = [a.fencing for a in store.assignments(worker)]
    store.submit([spec()])
    schedule_cycle(store)
    later = [a.fencing for a in store.assignments(worker)]

    assert len(first) == 3 and len(set(first)) == 3
    assert len(later) == 4
    assert max(later) > max(first)


def test_report_with_a_wrong_fencing_token_is_refused_and_changes_nothing(
    store: Store, worker: str
) -> None:
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id)
    before = snapshot(store)

    res = store.report(
        worker,
        [Started(a.run_id, a.fencing + 1000, time.time())],
        [succeeded(a, fencing=a.fencing - 1)],
    )

    assert res.accepted == []
    assert set(res.refused) == {a.run_id}
    assert "fencing" in res.refused[a.run_id]
    assert snapshot(store) == before
    assert store.get_job(job_id)["state"] == "LEASED"


def test_report_from_another_worker_is_refused(store: Store, worker: str) -> None:
    store.register_worker("w2", SHARD, CAPACITY)
    [job_id] = store.submit([spec(resources={"cpu": 16})])  # fits on one worker only once
    schedule_cycle(store)
    [a] = store.assignments(worker) + store.assignments("w2")
    other = "w2" if store.assignments(worker) else worker
    before = snapshot(store)

    res = store.report(other, [Started(a.run_id, a.fencing, time.time())], [succeeded(a)])

    assert res.accepted == [] and set(res.refused) == {a.run_id}
    assert snapshot(store) == before
    assert store.get_job(job_id)["state"] == "LEASED"


def test_a_run_never_ends_twice(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id)
    start(store, a)
    assert store.report(worker, [], [succeeded(a)]).accepted == [a.run_id]
    before = snapshot(store)

    again = store.report(worker, [], [failed(a)])
    dup_start = store.report(worker, [Started(a.run_id, a.fencing, time.time())], [])

    assert again.accepted == [] and set(again.refused) == {a.run_id}
    assert "already ended" in again.refused[a.run_id]
    assert dup_start.accepted == [] and set(dup_start.refused) == {a.run_id}
    assert snapshot(store) == before
    assert store.get_job(job_id)["state"] == "SUCCEEDED"
    assert [e["type"] for e in store.job_events(job_id)].count("succeeded") == 1


def test_a_report_for_a_lost_run_is_refused(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id, lease_timeout=0.3)
    start(store, a)
    wait_past(run_row(store, a.run_id)["lease_expires_at"])
    assert store.expire_leases() == 1
    before = snapshot(store)

    res = store.report(worker, [], [succeeded(a)])

    assert res.accepted == [] and set(res.refused) == {a.run_id}
    assert snapshot(store) == before
    assert store.get_job(job_id)["state"] == "QUEUED"


def test_duplicate_finished_in_one_report_ends_the_run_once(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id)
    start(store, a)

    store.report(worker, [], [succeeded(a), failed(a)])

    assert store.get_job(job_id)["state"] == "SUCCEEDED"
    evs = [e["type"] for e in store.job_events(job_id)]
    assert evs[-1] == "succeeded"
    assert evs.count("succeeded") == 1 and "failed" not in evs


def test_second_finished_for_a_run_in_one_report_is_refused(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id)
    start(store, a)

    res = store.report(worker, [], [succeeded(a), failed(a)])

    assert res.accepted == [a.run_id]
    assert set(res.refused) == {a.run_id}


def test_one_out_of_order_item_does_not_sink_the_whole_report(store: Store, worker: str) -> None:
    first, second = store.submit([spec(), spec()])
    schedule_cycle(store)
    by_job = {a.job_id: a for a in store.assignments(worker)}
    a, b = by_job[first], by_job[second]
    start(store, b)

    res = store.report(worker, [], [succeeded(a), succeeded(b)])

    assert store.get_job(second)["state"] == "SUCCEEDED"
    assert store.get_job(first)["state"] == "SUCCEEDED" or a.run_id in res.refused


# -- lost leases ----------------------------------------------------------------------------


def test_expired_lease_makes_the_run_lost_and_requeues_the_job(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])  # no retry policy: max_retries 0
    a = lease_one(store, job_id, lease_timeout=0.3)
    start(store, a)
    wait_past(run_row(store, a.run_id)["lease_expires_at"])

    assert store.expire_leases() == 1
    assert store.expire_leases() == 0  # nothing more to expire

    run = run_row(store, a.run_id)
    assert run["state"] == "LOST"
    assert run["failure"]["condition"] == "LEASE_EXPIRED"
    job = store.get_job(job_id)
    assert job["state"] == "QUEUED"
    assert job["failure"]["condition"] == "LEASE_EXPIRED"
    assert (job["worker"], job["shard"]) == (None, None)
    evs = store.job_events(job_id)
    assert [e["type"] for e in evs] == [
        "submitted",
        "queued",
        "scheduled",
        "leased",
        "running",
        "requeued",
    ]
    req = evs[-1]
    assert (req["cause"], req["run_id"], req["state"]) == ("lease_expired", a.run_id, "QUEUED")
    assert req["failure"]["condition"] == "LEASE_EXPIRED"
    with store.read() as conn:
        counted = conn.execute(
            sa.select(jobs.c.counted_retries).where(jobs.c.id == job_id)
        ).scalar_one()
    assert counted == 0


def test_expired_lease_is_detected_only_once_the_time_has_passed(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id, lease_timeout=3600)
    assert store.expire_leases() == 0
    assert run_row(store, a.run_id)["state"] == "LEASED"
    assert store.get_job(job_id)["state"] == "LEASED"


def test_lost_lease_does_not_use_up_max_retries(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec(retry={"max_retries": 1, "backoff": {"initial": 0}})])
    a = lease_one(store, job_id, lease_timeout=0.3)
    wait_past(run_row(store, a.run_id)["lease_expires_at"])
    assert store.expire_leases() == 1
    assert store.get_job(job_id)["state"] == "QUEUED"

    b = lease_one(store, job_id)  # the lost run did not count: one retry is still left
    start(store, b)
    store.report(worker, [], [failed(b)])
    assert store.get_job(job_id)["state"] == "QUEUED"

    c = lease_one(store, job_id)
    start(store, c)
    store.report(worker, [], [failed(c)])

    job = store.get_job(job_id)
    assert job["state"] == "FAILED"
    assert [r["state"] for r in job["runs"]] == ["LOST", "FAILED", "FAILED"]
    causes = [e["cause"] for e in store.job_events(job_id) if e["type"] == "requeued"]
    assert causes == ["lease_expired", "failed"]


def test_lost_lease_of_a_cancel_requested_job_cancels_it(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id, lease_timeout=0.3)
    store.cancel(job_id)
    wait_past(run_row(store, a.run_id)["lease_expires_at"])

    assert store.expire_leases() == 1

    assert store.get_job(job_id)["state"] == "CANCELLED"
    assert run_row(store, a.run_id)["state"] == "LOST"
    types = [e["type"] for e in store.job_events(job_id)]
    assert types[-2:] == ["cancel_requested", "cancelled"]
    assert "requeued" not in types


def test_reregistering_a_worker_loses_the_runs_of_its_earlier_incarnation(
    store: Store, worker: str
) -> None:
    running, leased = store.submit([spec(), spec()])
    schedule_cycle(store)
    by_job = {a.job_id: a for a in store.assignments(worker)}
    start(store, by_job[running])
    first_incarnation = store.list_workers()[0]["incarnation"]

    second_incarnation = store.register_worker(worker, SHARD, CAPACITY)

    assert second_incarnation != first_incarnation
    assert store.list_workers()[0]["incarnation"] == second_incarnation
    for job_id in (running, leased):
        a = by_job[job_id]
        run = run_row(store, a.run_id)
        assert run["state"] == "LOST"
        assert run["failure"]["condition"] == "LEASE_EXPIRED"
        assert store.get_job(job_id)["state"] == "QUEUED"
        requeued = [e for e in store.job_events(job_id) if e["type"] == "requeued"]
        assert [(e["cause"], e["run_id"]) for e in requeued] == [("lease_expired", a.run_id)]
    assert store.assignments(worker) == []
    # The old incarnation's reports are refused.
    a = by_job[running]
    res = store.report(worker, [], [succeeded(a)])
    assert res.accepted == [] and set(res.refused) == {a.run_id}
    # The new incarnation gets new runs of the same jobs.
    assert schedule_cycle(store) == 2
    new = {x.job_id: x for x in store.assignments(worker)}
    assert set(new) == {running, leased}
    assert all(x.attempt == 2 for x in new.values())
    assert all(x.fencing > max(y.fencing for y in by_job.values()) for x in new.values())


def test_reregistering_a_worker_with_no_runs_changes_no_job(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])
    n = len(store.events_after(0))
    store.register_worker(worker, SHARD, CAPACITY)
    assert len(store.events_after(0)) == n
    assert store.get_job(job_id)["state"] == "QUEUED"


def test_heartbeat_renews_leases(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id, lease_timeout=0.3)
    start(store, a)
    old_expiry = run_row(store, a.run_id)["lease_expires_at"]
    old_beat = store.list_workers()[0]["last_heartbeat"]

    store.heartbeat(worker, lease_timeout=3600)

    new_expiry = run_row(store, a.run_id)["lease_expires_at"]
    assert new_expiry > old_expiry + 3000
    assert store.list_workers()[0]["last_heartbeat"] >= old_beat
    wait_past(old_expiry)
    assert store.expire_leases() == 0
    assert run_row(store, a.run_id)["state"] == "RUNNING"
    assert store.get_job(job_id)["state"] == "RUNNING"
    assert store.report(worker, [], [succeeded(a)]).accepted == [a.run_id]
    assert store.get_job(job_id)["state"] == "SUCCEEDED"


def test_heartbeat_does_not_renew_another_workers_leases(store: Store, worker: str) -> None:
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id, lease_timeout=0.3)
    store.register_worker("w2", SHARD, CAPACITY)

    store.heartbeat("w2", lease_timeout=3600)

    wait_past(run_row(store, a.run_id)["lease_expires_at"])
    assert store.expire_leases() == 1
    assert run_row(store, a.run_id)["state"] == "LOST"


def test_rooms_subtract_active_runs_and_skip_stale_workers(store: Store, worker: str) -> None:
    store.submit([spec(resources={"cpu": 2, "memory": "1Gi"}) for _ in range(3)])
    schedule_cycle(store)

    free, total = rooms(store, SHARD, fresh_after=time.time() - 60)

    assert [(r.worker, r.cpu_milli, r.memory) for r in total] == [
        (worker, CAPACITY.cpu_milli, CAPACITY.memory)
    ]
    assert [(r.worker, r.cpu_milli, r.memory) for r in free] == [
        (worker, CAPACITY.cpu_milli - 6000, CAPACITY.memory - 3 * 2**30)
    ]
    assert rooms(store, SHARD, fresh_after=time.time() + 60) == ([], [])
