"""Scheduling policy through the store and the real loop's cycle, on SQLite and PostgreSQL:
fair share, queue limits, preemption by priority class, gangs, job-set reprioritize,
dependencies (PRODUCT.md §2, §3, §7)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from jobfleet.errors import InvalidInput
from jobfleet.failures import Condition, FailureInfo
from jobfleet.protocol import Capacity, Finished, Started
from jobfleet.scheduling.loop import Scheduler
from jobfleet.store import Store
from jobfleet.store.cycle import ClassInfo
from tests.integration.storekit import spec

GI = 2**30
CLASSES = {"default": ClassInfo(0, True), "urgent": ClassInfo(100, False)}


def scheduler(store: Store) -> Scheduler:
    return Scheduler(store, shards=["default"], lease_timeout=60, priority_classes=CLASSES)


def worker(store: Store, name: str = "w1", cpu: int = 16) -> None:
    store.register_worker(name, "default", Capacity(cpu_milli=cpu * 1000, memory=64 * GI))


def states(store: Store, ids: list[str]) -> Counter[str]:
    return Counter(store.get_job(i)["state"] for i in ids)


def start_all(store: Store, name: str = "w1") -> None:
    started = [Started(a.run_id, a.fencing, time.time()) for a in store.assignments(name)]
    assert not store.report(name, started, []).refused


def preempted(store: Store, job_id: str, name: str = "w1") -> None:
    """The worker confirms it stopped a preempted run (what its executor reports)."""
    job = store.get_job(job_id)
    [a] = [a for a in store.assignments(name, exclude=set()) if a.job_id == job_id] or [None]
    run = job["runs"][-1]
    fencing = a.fencing if a else _fencing(store, run["id"])
    failure = FailureInfo(condition=Condition.PREEMPTED, message="preempted")
    res = store.report(
        name, [], [Finished(run["id"], fencing, "failed", time.time(), None, 15, failure)]
    )
    assert not res.refused, res


def _fencing(store: Store, run_id: str) -> int:
    import sqlalchemy as sa

    from jobfleet.store.schema import runs

    with store.read() as conn:
        return int(conn.execute(sa.select(runs.c.fencing).where(runs.c.id == run_id)).scalar_one())


def event_types(store: Store, job_id: str) -> list[str]:
    return [e["type"] for e in store.job_events(job_id)]


def test_two_queues_with_weights_1_and_3_share_the_shard_1_to_3(store: Store) -> None:
    store.upsert_queue("a", weight=1, config={})
    store.upsert_queue("b", weight=3, config={})
    worker(store, cpu=16)
    ids = {q: store.submit([spec(queue=q, resources={"cpu": 1}) for _ in range(30)]) for q in "ab"}
    scheduler(store).cycle()
    running = {q: states(store, ids[q])["LEASED"] for q in "ab"}
    assert running == {"a": 4, "b": 12}
    for q in "ab":  # every job left waiting says why
        assert all(store.get_job(i)["scheduling_reason"] for i in ids[q][running[q] :][:10])


def test_jobs_of_the_default_class_and_of_no_class_are_one_lane_in_priority_order(
    store: Store,
) -> None:
    # Stored apart (no class is NULL), placed as one class: priority first, then submit order.
    worker(store, cpu=3)
    one = dict(resources={"cpu": 1})
    low = store.submit([spec(priority_class="default", priority=0, **one)])
    ids = store.submit(
        [
            spec(priority=1, **one),
            spec(priority_class="default", priority=5, **one),
            spec(priority=9, **one),
        ]
    )
    scheduler(store).cycle()
    assert states(store, ids) == {"LEASED": 3}
    assert store.get_job(low[0])["state"] == "SCHEDULED"
    demands, _, unread = store.lanes("default", ["default"], CLASSES)
    assert [d.job_id for d in demands] == low and not unread


def test_the_head_of_each_lane_is_read_in_placement_order(store: Store) -> None:
    classes = {"default": ClassInfo(0, True), "batch": ClassInfo(0, True)}
    cases = [("batch", 3), (None, 3), ("default", 7), (None, 0), ("batch", 7), ("default", 0)]
    ids = store.submit([spec(priority_class=c, priority=p) for c, p in cases])
    worker(store)
    store.route_to(dict.fromkeys(ids, "default"))
    demands, _, unread = store.lanes("default", ["default"], classes, per_lane=2)
    # Three stored lanes of one class priority, two jobs read from each, merged in order.
    assert [d.job_id for d in demands] == [ids[2], ids[4], ids[0], ids[1], ids[3], ids[5]]
    assert unread == {(0, "default")}
    demands, _, unread = store.lanes("default", ["default"], classes, per_lane=3)
    assert len(demands) == 6 and unread == set()


def test_a_queue_at_max_running_jobs_holds_jobs_back_and_says_so(store: Store) -> None:
    store.upsert_queue("ml", weight=1, config={"max_running_jobs": 2})
    worker(store)
    ids = store.submit([spec(queue="ml", resources={"cpu": 1}) for _ in range(5)])
    scheduler(store).cycle()
    assert states(store, ids) == {"LEASED": 2, "SCHEDULED": 3}
    assert store.get_job(ids[4])["scheduling_reason"] == "queue ml is at max_running_jobs 2"


def test_max_resources_limit_the_queue(store: Store) -> None:
    store.upsert_queue("ml", weight=1, config={"max_resources": {"cpu": 3}})
    worker(store)
    ids = store.submit([spec(queue="ml", resources={"cpu": 2}) for _ in range(3)])
    scheduler(store).cycle()
    assert states(store, ids) == {"LEASED": 1, "SCHEDULED": 2}
    assert store.get_job(ids[1])["scheduling_reason"].startswith(
        "queue ml is at max_resources cpu 3"
    )


def test_an_urgent_job_preempts_the_fewest_low_jobs_and_runs_once_they_stop(store: Store) -> None:
    worker(store, cpu=4)
    low = store.submit([spec(resources={"cpu": 1}, priority=p) for p in (5, 1, 2, 9)])
    sched = scheduler(store)
    sched.cycle()
    start_all(store)
    [urgent] = store.submit([spec(resources={"cpu": 2}, priority_class="urgent")])
    sched.cycle()
    victims = [i for i in low if store.get_job(i)["preempt_requested"]]
    assert sorted(victims) == sorted([low[1], low[2]])  # the two of lowest priority
    job = store.get_job(urgent)
    assert job["state"] == "SCHEDULED"
    assert job["scheduling_reason"] == "waiting for 2 preempted jobs to stop on worker w1"
    sched.cycle()  # no new victims while those stop, and the room is not given away
    assert sum(store.get_job(i)["preempt_requested"] for i in low) == 2
    for v in victims:
        preempted(store, v)
    sched.cycle()
    assert store.get_job(urgent)["state"] == "LEASED"
    for v in victims:
        evs = store.job_events(v)
        assert [e["type"] for e in evs].count("requeued") == 1
        assert evs[-1]["type"] in ("requeued", "scheduled") and any(
            e["type"] == "requeued" and e["cause"] == "preempted" for e in evs
        )
        assert "preempted" not in [e["type"] for e in evs]


def test_nothing_preempts_jobs_of_a_non_preemptible_or_equal_class(store: Store) -> None:
    worker(store, cpu=2)
    sched = scheduler(store)
    first = store.submit([spec(resources={"cpu": 2}, priority_class="urgent")])
    sched.cycle()
    [second] = store.submit([spec(resources={"cpu": 2}, priority_class="urgent")])
    sched.cycle()
    assert not store.get_job(first[0])["preempt_requested"]
    assert store.get_job(second)["scheduling_reason"].startswith("waiting for free CPU")


def test_a_gang_waits_for_all_members_then_is_placed_whole(store: Store) -> None:
    worker(store, "w1", cpu=2)
    worker(store, "w2", cpu=2)
    gang = {"id": "g1", "size": 3}
    sched = scheduler(store)
    first = store.submit([spec(resources={"cpu": 1}, gang=gang) for _ in range(2)])
    sched.cycle()
    assert states(store, first) == {"SCHEDULED": 2}
    assert store.get_job(first[0])["scheduling_reason"] == "gang g1 has 2 of 3 members"
    [last] = store.submit([spec(resources={"cpu": 1}, gang=gang)])
    sched.cycle()
    assert states(store, [*first, last]) == {"LEASED": 3}
    workers = {store.get_job(i)["worker"] for i in [*first, last]}
    assert workers == {"w1", "w2"}  # one gang across two workers


def test_a_gang_that_does_not_fit_whole_takes_nothing(store: Store) -> None:
    worker(store, cpu=2)
    ids = store.submit([spec(resources={"cpu": 1}, gang={"id": "g", "size": 3}) for _ in range(3)])
    scheduler(store).cycle()
    assert states(store, ids) == {"SCHEDULED": 3}
    assert "no room for all 3 members" in store.get_job(ids[0])["scheduling_reason"]


def test_when_one_gang_member_is_preempted_the_others_are_stopped_too(store: Store) -> None:
    worker(store, cpu=4)
    ids = store.submit([spec(resources={"cpu": 1}, gang={"id": "g", "size": 3}) for _ in range(3)])
    sched = scheduler(store)
    sched.cycle()
    start_all(store)
    store.preempt(ids[0])
    preempted(store, ids[0])
    assert store.break_gangs() == 2
    assert all(store.get_job(i)["preempt_requested"] for i in ids[1:])
    for i in ids[1:]:
        preempted(store, i)
    sched.cycle()
    assert states(store, ids) == {"LEASED": 3}  # requeued and placed again, together


def test_gang_members_must_agree_with_those_already_stored(store: Store) -> None:
    store.submit([spec(gang={"id": "g", "size": 2})])
    with pytest.raises(InvalidInput) as err:
        store.submit([spec(gang={"id": "g", "size": 3}, queue="default")])
    assert err.value.extra["errors"][0]["loc"] == ["jobs", 0, "gang", "size"]
    store.submit([spec(gang={"id": "g", "size": 2})])
    with pytest.raises(InvalidInput) as err:
        store.submit([spec(gang={"id": "g", "size": 2})])
    assert "already has 2 of its 2 members" in err.value.extra["errors"][0]["msg"]


def test_reprioritize_a_job_set_changes_each_live_job_once(store: Store) -> None:
    worker(store, cpu=1)
    ids = store.submit([spec(job_set="s", resources={"cpu": 1}) for _ in range(3)])
    other = store.submit([spec(job_set="t", resources={"cpu": 1})])
    store.cancel(ids[2])
    assert store.reprioritize_job_set("default", "s", 7) == 2
    assert [store.get_job(i)["priority"] for i in ids] == [7, 7, 0]
    assert event_types(store, ids[0]).count("reprioritized") == 1
    assert "reprioritized" not in event_types(store, ids[2])
    store.reprioritize_job_set("default", "s", -1)
    store.reprioritize(ids[1], 50)
    scheduler(store).cycle()  # the next cycle uses the new order
    assert store.get_job(ids[1])["state"] == "LEASED"
    assert store.get_job(other[0])["state"] == "SCHEDULED"


def _finish(store: Store, job_id: str, outcome: str) -> None:
    worker(store, "wd", cpu=64)
    Scheduler(store, shards=["default"], lease_timeout=60).cycle()
    [a] = [a for a in store.assignments("wd") if a.job_id == job_id]
    failure = None if outcome == "succeeded" else FailureInfo(condition=Condition.EXIT_NONZERO)
    fin: Any = Finished(
        a.run_id, a.fencing, outcome, time.time(), 0 if failure is None else 1, None, failure
    )  # type: ignore[arg-type]
    assert not store.report("wd", [Started(a.run_id, a.fencing, time.time())], [fin]).refused


@pytest.mark.parametrize(
    ("outcome", "after", "expected"),
    [
        ("succeeded", "success", "QUEUED"),
        ("failed", "success", "FAILED"),
        ("succeeded", "any", "QUEUED"),
        ("failed", "any", "QUEUED"),
        ("failed", "failure", "QUEUED"),
        ("succeeded", "failure", "FAILED"),
    ],
)
def test_each_after_kind_of_dependency(
    store: Store, outcome: str, after: str, expected: str
) -> None:
    [parent] = store.submit([spec()])
    [child] = store.submit([spec(depends_on=[{"job_id": parent, "after": after}])])
    assert store.get_job(child)["state"] == "WAITING"
    _finish(store, parent, outcome)
    store.resolve_dependencies()
    job = store.get_job(child)
    assert job["state"] == expected
    if expected == "FAILED":
        assert job["failure"]["condition"] == "DEPENDENCY_FAILED"


def test_the_scheduler_wakes_on_new_work_and_endings_not_on_its_own_writes_or_starts(
    store: Store,
) -> None:
    """What `up` subscribes the scheduler to (SCHEDULER_KINDS): a submission and a run's end
    wake it; its own routing and leases and a report of starts only do not, and a cycle that
    placed all it read does not ask for another one at once."""
    from jobfleet.store.wakeups import SCHEDULER_KINDS

    s = scheduler(store)
    woken = threading.Event()
    store.subscribe(woken.set, kinds=SCHEDULER_KINDS)
    worker(store)
    [job_id] = store.submit([spec()])
    assert woken.is_set()
    woken.clear()
    assert s.cycle() == 2  # routed and leased in one cycle
    assert not woken.is_set() and not s._more
    [a] = store.assignments("w1")
    assert a.job_id == job_id
    store.report("w1", [Started(a.run_id, a.fencing, time.time())], [])
    assert not woken.is_set()
    store.report("w1", [], [Finished(a.run_id, a.fencing, "succeeded", time.time(), 0)])
    assert woken.is_set()
    assert store.get_job(job_id)["state"] == "SUCCEEDED"
