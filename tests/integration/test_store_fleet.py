"""The fleet in the store (both backends): a worker's sync (renew, reconcile, poll), drain
states, master routing moves and their events, re-routing, the views, and leader election with
its epoch fence (PRODUCT.md §7, §8)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobfleet.errors import Conflict, NotFound, NotLeader
from jobfleet.protocol import Capacity
from jobfleet.scheduling.loop import Scheduler
from jobfleet.store import Store
from jobfleet.store.leader import Leadership
from jobfleet.store.schema import events, jobs, runs
from tests.integration.storekit import CAPACITY, SHARD, WORKER, lease_one, spec
from tests.integration.test_store_workers import wait_past

GI = 2**30


def job_events(store: Store, job_id: str) -> list[tuple[str, dict[str, object] | None]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(events.c.type, events.c.payload)
            .where(events.c.job_id == job_id)
            .order_by(events.c.id)
        )
        return [(r.type, r.payload) for r in rows]


def job_row(store: Store, job_id: str) -> dict[str, object]:
    with store.read() as conn:
        return dict(conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()._mapping)


# -- sync: heartbeat, reconcile, poll ---------------------------------------------------------


def test_sync_hands_out_new_leases_and_skips_the_ones_the_worker_has(store: Store) -> None:
    inc = store.register_worker(WORKER, SHARD, CAPACITY)
    [a_id, b_id] = store.submit([spec(), spec()])
    a = lease_one(store, a_id)
    got = store.sync(WORKER, incarnation=inc)
    assert {x.job_id for x in got.assignments} == {a_id, b_id}
    again = store.sync(WORKER, incarnation=inc, held=[a.run_id])
    assert {x.job_id for x in again.assignments} == {b_id} and again.stop == []


def test_renew_extends_live_leases_but_never_revives_an_expired_one(store: Store) -> None:
    inc = store.register_worker(WORKER, SHARD, CAPACITY)
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id, lease_timeout=0.3)
    wait_past(a.lease_expires_at)
    answer = store.sync(WORKER, incarnation=inc, held=[a.run_id], renew=True, lease_timeout=60)
    assert answer.stop == [a.run_id]  # expired: the worker must kill it
    with store.read() as conn:
        expires = conn.execute(sa.select(runs.c.lease_expires_at)).scalar()
    assert expires == pytest.approx(a.lease_expires_at)
    assert store.expire_leases() == 1
    assert job_events(store, job_id)[-1][0] == "requeued"


def test_renew_keeps_a_live_lease_alive(store: Store) -> None:
    inc = store.register_worker(WORKER, SHARD, CAPACITY)
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id, lease_timeout=5)
    answer = store.sync(WORKER, incarnation=inc, held=[a.run_id], renew=True, lease_timeout=60)
    assert answer.stop == []
    with store.read() as conn:
        expires = conn.execute(sa.select(runs.c.lease_expires_at)).scalar()
    assert expires > time.time() + 50


def test_runs_held_that_are_not_ours_are_to_be_stopped(store: Store) -> None:
    inc = store.register_worker(WORKER, SHARD, CAPACITY)
    answer = store.sync(WORKER, incarnation=inc, held=["someone-elses-run"], renew=True)
    assert answer.stop == ["someone-elses-run"]


def test_a_superseded_or_unknown_worker_is_told_so(store: Store) -> None:
    old = store.register_worker(WORKER, SHARD, CAPACITY)
    store.register_worker(WORKER, SHARD, CAPACITY)
    with pytest.raises(Conflict, match="superseded"):
        store.sync(WORKER, incarnation=old, renew=True)
    with pytest.raises(NotFound, match="register it again"):
        store.sync("nobody", renew=True)


def test_a_draining_worker_gets_no_new_leases_and_offline_loses_its_runs(store: Store) -> None:
    inc = store.register_worker(WORKER, SHARD, CAPACITY)
    [first] = store.submit([spec()])
    a = lease_one(store, first)
    store.set_worker_state(WORKER, "DRAINING", incarnation=inc)
    [second] = store.submit([spec()])
    Scheduler(store, shards=[SHARD], lease_timeout=60).cycle()
    assert job_row(store, second)["state"] in ("QUEUED", "SCHEDULED")
    assert [w["state"] for w in store.worker_views(fresh_after=0)] == ["DRAINING"]
    store.set_worker_state(WORKER, "OFFLINE", incarnation=inc)
    with store.read() as conn:
        assert conn.execute(sa.select(runs.c.state).where(runs.c.id == a.run_id)).scalar() == (
            "LOST"
        )
    with pytest.raises(NotFound):
        store.sync(WORKER, incarnation=inc, renew=True)


# -- routing ------------------------------------------------------------------------------------


def test_the_scheduler_routes_by_selector_and_places_on_the_matching_worker(store: Store) -> None:
    store.ensure_shards({"eu": {"zone": "eu"}})
    store.register_worker("w-default", SHARD, CAPACITY)
    store.register_worker("w-eu", "eu", Capacity(2000, 4 * GI))
    store.register_worker("w-ssd", "eu", Capacity(2000, 4 * GI), labels={"disk": "ssd"})
    [eu, ssd, anywhere] = store.submit(
        [spec(selector={"zone": "eu"}), spec(selector={"disk": "ssd"}), spec()]
    )
    Scheduler(store, shards=[SHARD], lease_timeout=60).cycle()
    rows = {j: job_row(store, j) for j in (eu, ssd, anywhere)}
    assert rows[eu]["shard"] == "eu" and rows[eu]["worker"] in ("w-eu", "w-ssd")
    assert rows[ssd]["shard"] == "eu" and rows[ssd]["worker"] == "w-ssd"
    assert rows[anywhere]["shard"] == SHARD  # the most free CPU
    assert [t for t, _ in job_events(store, ssd)] == ["submitted", "queued", "scheduled", "leased"]


def test_a_job_no_shard_can_hold_stays_queued_and_says_why(store: Store) -> None:
    store.register_worker(WORKER, SHARD, CAPACITY)
    [job_id] = store.submit([spec(selector={"gpu": "a100"})])
    Scheduler(store, shards=[SHARD], lease_timeout=60).cycle()
    row = job_row(store, job_id)
    assert row["state"] == "QUEUED" and "gpu=a100" in str(row["scheduling_reason"])


def test_a_shard_that_cannot_place_a_job_for_long_gives_it_back_for_rerouting(
    store: Store,
) -> None:
    store.register_worker("small", "a", Capacity(1000, 4 * GI))
    [hog, job_id] = store.submit([spec(), spec()])
    scheduler = Scheduler(store, shards=[], lease_timeout=60, reroute_after=0.2)
    scheduler.cycle()
    assert job_row(store, job_id)["state"] == "SCHEDULED"  # waits for `hog` in shard a
    store.register_worker("big", "b", Capacity(8000, 16 * GI))
    wait_past(float(job_row(store, job_id)["updated_at"]) + 0.25)  # type: ignore[arg-type]
    scheduler._next_housekeeping = 0  # housekeeping now
    scheduler.cycle()
    types = [t for t, _ in job_events(store, job_id)]
    assert types == ["submitted", "queued", "scheduled", "queued", "scheduled", "leased"]
    returned = [p for t, p in job_events(store, job_id) if t == "queued"][1]
    assert returned is not None and returned["cause"] == "rerouted" and returned["shard"] == "a"
    assert job_row(store, job_id)["worker"] == "big"
    assert hog


# -- views ------------------------------------------------------------------------------------


def test_views_show_capacity_allocation_and_queues(store: Store) -> None:
    store.register_worker(WORKER, SHARD, CAPACITY, labels={"rack": "r1"}, info={"pid": 1})
    [job_id] = store.submit([spec(resources={"cpu": 2, "memory": "1Gi"})])
    lease_one(store, job_id)
    [w] = store.worker_views(fresh_after=time.time() - 60)
    assert w["state"] == "READY" and w["running"] == 1 and w["labels"] == {"rack": "r1"}
    assert w["allocated"] == {"cpu": 2.0, "memory": GI, "gpu": 0}
    assert w["capacity"]["cpu"] == CAPACITY.cpu_milli / 1000 and w["info"] == {"pid": 1}
    [s] = [s for s in store.shard_views(fresh_after=time.time() - 60) if s["name"] == SHARD]
    assert s["workers"] == 1 and s["leased"] == 1 and s["allocated"]["cpu"] == 2.0
    [stale] = store.worker_views(fresh_after=time.time() + 1)
    assert stale["state"] == "UNREACHABLE"


# -- leader election ------------------------------------------------------------------------


def test_only_one_leader_and_a_standby_takes_over_when_it_lets_go(db_url: str) -> None:
    a, b = Store(db_url), Store(db_url)
    a.migrate()
    a.ensure_defaults()
    first, second = Leadership(a), Leadership(b)
    try:
        assert first.ensure() and first.ensure()
        assert not second.ensure()
        with pytest.raises(NotLeader):
            b.ensure_shards({"x": {}})  # a standby's store writes nothing
        first.release()
        assert second.ensure()
        with pytest.raises(NotLeader):
            a.ensure_shards({"x": {}})
        b.ensure_shards({"x": {}})
    finally:
        first.release()
        second.release()
        a.close()
        b.close()


def test_an_old_leader_that_missed_the_takeover_cannot_write(db_url: str, tmp_path: Path) -> None:
    """The claim was lost without the old leader noticing (a cut connection): the new leader's
    epoch bump fences every later write of the old one."""
    a, b = Store(db_url), Store(db_url)
    a.migrate()
    a.ensure_defaults()
    old, new = Leadership(a), Leadership(b)
    try:
        assert old.ensure()
        old.claim.release()  # as if the server dropped its connection
        assert new.ensure()
        assert old.epoch is not None  # it still believes it leads ...
        with pytest.raises(NotLeader):
            a.expire_leases()  # ... but its writes are refused
        assert not old.leading
    finally:
        old.release()
        new.release()
        a.close()
        b.close()
