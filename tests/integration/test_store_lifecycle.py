"""A job's whole life through the store: route → place → lease → report, failures and retries,
cancel (immediate and requested), reprioritize, cancel by job set (PRODUCT.md §3, §4, §6, §7)."""

from __future__ import annotations

import time

import pytest

from jobfleet.errors import IllegalTransition
from jobfleet.failures import Condition, FailureInfo
from jobfleet.protocol import Assignment, Finished, Started
from jobfleet.scheduling.cycle import lanes_of, plan_cycle
from jobfleet.store import Store
from tests.integration.storekit import (
    SHARD,
    WORKER,
    lease_one,
    pending,
    register,
    rooms,
    route,
    schedule_cycle,
    spec,
    start,
)


def exit_nonzero(a: Assignment, code: int = 3) -> Finished:
    return Finished(
        a.run_id,
        a.fencing,
        "failed",
        time.time(),
        exit_code=code,
        failure=FailureInfo(condition=Condition.EXIT_NONZERO, exit_code=code),
    )


def types(store: Store, job_id: str) -> list[str]:
    return [e["type"] for e in store.job_events(job_id)]


def test_happy_path_yields_exactly_the_six_events_in_order(store: Store) -> None:
    register(store)
    [job_id] = store.submit([spec()])

    assert route(store, SHARD) == 1
    assert store.get_job(job_id)["state"] == "SCHEDULED"
    demands = pending(store, SHARD)
    assert [d.job_id for d in demands] == [job_id]
    free, total = rooms(store, SHARD, fresh_after=time.time() - 60)
    assert [r.worker for r in free] == [WORKER]
    plan = plan_cycle(lanes_of(demands), {}, free, total, SHARD)
    assert plan.placed == [(job_id, WORKER)] and plan.reasons == {}
    assert store.lease(SHARD, plan.placed, lease_timeout=60) == 1
    assert pending(store, SHARD) == []

    [a] = store.assignments(WORKER)
    assert (a.job_id, a.attempt) == (job_id, 1)
    assert a.spec["command"] == ["true"]
    start(store, a)
    assert store.assignments(WORKER) == []  # started runs are no longer handed out
    res = store.report(WORKER, [], [Finished(a.run_id, a.fencing, "succeeded", time.time(), 0)])
    assert res.accepted == [a.run_id] and not res.refused

    evs = store.job_events(job_id)
    assert [e["type"] for e in evs] == [
        "submitted",
        "queued",
        "scheduled",
        "leased",
        "running",
        "succeeded",
    ]
    ids = [e["id"] for e in evs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e["state"] for e in evs] == [
        "QUEUED",
        "QUEUED",
        "SCHEDULED",
        "LEASED",
        "RUNNING",
        "SUCCEEDED",
    ]
    assert evs[2]["shard"] == SHARD
    assert (evs[3]["worker"], evs[3]["run_id"], evs[3]["attempt"]) == (WORKER, a.run_id, 1)
    assert evs[5]["run_id"] == a.run_id

    job = store.get_job(job_id)
    assert (job["state"], job["attempt"], job["failure"]) == ("SUCCEEDED", 1, None)
    [run] = job["runs"]
    assert (run["id"], run["state"], run["worker"], run["exit_code"]) == (
        a.run_id,
        "SUCCEEDED",
        WORKER,
        0,
    )
    assert run["started_at"] is not None and run["finished_at"] is not None
    assert [x["name"] for x in job["actions"] if x["enabled"]] == ["retry"]


def test_nonzero_exit_without_retry_policy_fails_the_job(store: Store) -> None:
    register(store)
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id)
    start(store, a)

    res = store.report(WORKER, [], [exit_nonzero(a, 3)])
    assert res.accepted == [a.run_id]

    job = store.get_job(job_id)
    assert job["state"] == "FAILED"
    assert job["failure"]["condition"] == "EXIT_NONZERO"
    assert job["failure"]["exit_code"] == 3
    assert job["failure"]["retryable"] is False
    [run] = job["runs"]
    assert run["state"] == "FAILED"
    assert run["exit_code"] == 3
    assert run["failure"]["condition"] == "EXIT_NONZERO"
    assert run["failure"]["exit_code"] == 3
    evs = store.job_events(job_id)
    assert [e["type"] for e in evs][-2:] == ["running", "failed"]
    assert "requeued" not in [e["type"] for e in evs]
    assert evs[-1]["failure"]["condition"] == "EXIT_NONZERO"
    assert evs[-1]["failure"]["exit_code"] == 3
    assert evs[-1]["run_id"] == a.run_id


def test_spec_retry_policy_runs_an_always_failing_job_exactly_four_times(store: Store) -> None:
    register(store)
    [job_id] = store.submit([spec(retry={"max_retries": 3, "backoff": {"initial": 0}})])

    attempts: list[int] = []
    for _ in range(10):  # bounded: the job must end well before this
        if store.get_job(job_id)["state"] == "FAILED":
            break
        a = lease_one(store, job_id)
        attempts.append(a.attempt)
        start(store, a)
        assert store.report(WORKER, [], [exit_nonzero(a, 1)]).accepted == [a.run_id]

    assert attempts == [1, 2, 3, 4]
    job = store.get_job(job_id)
    assert job["state"] == "FAILED"
    assert [(r["attempt"], r["state"]) for r in job["runs"]] == [(n, "FAILED") for n in attempts]
    evs = store.job_events(job_id)
    requeued = [e for e in evs if e["type"] == "requeued"]
    assert [e["cause"] for e in requeued] == ["failed"] * 3
    assert [e["attempt"] for e in requeued] == [1, 2, 3]
    assert [e["run_id"] for e in requeued] == [r["id"] for r in job["runs"][:3]]
    for e in requeued:
        assert e["state"] == "QUEUED"
        assert e["failure"]["condition"] == "EXIT_NONZERO"
        assert e["failure"]["retryable"] is True
    assert [e["type"] for e in evs] == [
        "submitted",
        "queued",
        *(["scheduled", "leased", "running", "requeued"] * 3),
        "scheduled",
        "leased",
        "running",
        "failed",
    ]
    assert evs[-1]["failure"]["retryable"] is False
    assert evs[-1]["attempt"] == 4


def test_queue_retry_policy_applies_when_the_spec_has_none(store: Store) -> None:
    store.upsert_queue("retrying", config={"retry": {"max_retries": 1, "backoff": {"initial": 0}}})
    register(store)
    [job_id] = store.submit([spec(queue="retrying")])

    for _ in range(2):
        a = lease_one(store, job_id)
        start(store, a)
        store.report(WORKER, [], [exit_nonzero(a)])

    assert store.get_job(job_id)["state"] == "FAILED"
    assert types(store, job_id).count("requeued") == 1
    assert len(store.get_job(job_id)["runs"]) == 2


def test_cancel_before_a_run_is_immediate(store: Store) -> None:
    [parent] = store.submit([spec()])
    [waiting] = store.submit([spec(depends_on=[parent])])
    [scheduled] = store.submit([spec()])
    route(store, SHARD)
    [queued] = store.submit([spec()])
    jobs = {"WAITING": waiting, "SCHEDULED": scheduled, "QUEUED": queued}
    for state, job_id in jobs.items():
        assert store.get_job(job_id)["state"] == state

    for job_id in jobs.values():
        store.cancel(job_id, reason="not needed", actor="alice")

    for state, job_id in jobs.items():
        job = store.get_job(job_id)
        assert (job["state"], job["cancel_requested"]) == ("CANCELLED", False), state
        evs = store.job_events(job_id)
        assert evs[-1]["type"] == "cancelled"
        assert (evs[-1]["reason"], evs[-1]["requested_by"]) == ("not needed", "alice")
        assert [e["type"] for e in evs].count("cancelled") == 1
        assert "cancel_requested" not in [e["type"] for e in evs]
    assert [d.job_id for d in pending(store, SHARD)] == [parent]  # only the live one is left


def test_cancel_of_a_running_job_is_requested_then_confirmed_by_the_worker(store: Store) -> None:
    register(store)
    [job_id] = store.submit([spec()])
    a = lease_one(store, job_id)
    start(store, a)
    assert store.cancel_orders(WORKER) == []

    store.cancel(job_id)

    job = store.get_job(job_id)
    assert (job["state"], job["cancel_requested"]) == ("RUNNING", True)
    cancel = next(x for x in job["actions"] if x["name"] == "cancel")
    assert (cancel["enabled"], cancel["in_progress"]) == (False, True)
    assert types(store, job_id)[-1] == "cancel_requested"
    assert store.cancel_orders(WORKER) == [a.run_id]
    assert store.cancel_orders("another-worker") == []
    with pytest.raises(IllegalTransition):
        store.cancel(job_id)  # one cancel in progress is enough

    res = store.report(
        WORKER, [], [Finished(a.run_id, a.fencing, "cancelled", time.time(), signal=15)]
    )
    assert res.accepted == [a.run_id]

    job = store.get_job(job_id)
    assert (job["state"], job["cancel_requested"]) == ("CANCELLED", False)
    assert job["runs"][0]["state"] == "CANCELLED"
    assert store.cancel_orders(WORKER) == []
    assert types(store, job_id)[-3:] == ["running", "cancel_requested", "cancelled"]


def test_cancelling_a_terminal_job_is_refused_with_state_and_actions(store: Store) -> None:
    register(store)
    ok, bad, gone = store.submit([spec(), spec(), spec()])
    store.cancel(gone)
    schedule_cycle(store)
    by_job = {a.job_id: a for a in store.assignments(WORKER)}
    a, b = by_job[ok], by_job[bad]
    store.report(
        WORKER,
        [Started(x.run_id, x.fencing, time.time()) for x in (a, b)],
        [Finished(a.run_id, a.fencing, "succeeded", time.time(), 0), exit_nonzero(b)],
    )
    jobs = {"SUCCEEDED": ok, "FAILED": bad, "CANCELLED": gone}

    for terminal, job_id in jobs.items():
        assert store.get_job(job_id)["state"] == terminal
        n_events = len(store.job_events(job_id))

        with pytest.raises(IllegalTransition) as info:
            store.cancel(job_id)

        assert info.value.state == terminal
        assert info.value.actions == ["retry"]
        assert info.value.status == 409
        with pytest.raises(IllegalTransition):
            store.reprioritize(job_id, 5)
        assert len(store.job_events(job_id)) == n_events


def test_reprioritize_emits_an_event_and_reorders_the_queue(store: Store) -> None:
    first, second = store.submit([spec(priority=1), spec(priority=1)])
    route(store, SHARD)
    assert [d.job_id for d in pending(store, SHARD)] == [first, second]

    store.reprioritize(second, 10, actor="bob")

    job = store.get_job(second)
    assert (job["priority"], job["state"]) == (10, "SCHEDULED")
    ev = store.job_events(second)[-1]
    assert (ev["type"], ev["priority"], ev["previous"], ev["requested_by"]) == (
        "reprioritized",
        10,
        1,
        "bob",
    )
    assert ev["state"] == "SCHEDULED"
    assert [d.job_id for d in pending(store, SHARD)] == [second, first]


def test_cancel_job_set_counts_immediate_and_requested(store: Store) -> None:
    register(store)
    running, leased = store.submit([spec(job_set="s"), spec(job_set="s")])
    schedule_cycle(store)
    a = next(x for x in store.assignments(WORKER) if x.job_id == running)
    start(store, a)
    done = store.submit([spec(job_set="s")])[0]
    b = lease_one(store, done)
    start(store, b)
    store.report(WORKER, [], [Finished(b.run_id, b.fencing, "succeeded", time.time(), 0)])
    scheduled = store.submit([spec(job_set="s")])[0]
    route(store, SHARD)
    queued = store.submit([spec(job_set="s"), spec(job_set="s")])
    other_set = store.submit([spec(job_set="t")])[0]
    store.upsert_queue("ml", config={})
    other_queue = store.submit([spec(job_set="s", queue="ml")])[0]

    counts = store.cancel_job_set("default", "s", reason="cleanup")

    assert counts == {"cancelled": 3, "cancel_requested": 2}
    state = {j: store.get_job(j)["state"] for j in [running, leased, done, scheduled, *queued]}
    assert state == {
        running: "RUNNING",
        leased: "LEASED",
        done: "SUCCEEDED",
        scheduled: "CANCELLED",
        queued[0]: "CANCELLED",
        queued[1]: "CANCELLED",
    }
    assert store.get_job(running)["cancel_requested"] is True
    assert store.get_job(other_set)["state"] == "QUEUED"
    assert store.get_job(other_queue)["state"] == "QUEUED"
    assert sorted(store.cancel_orders(WORKER)) == sorted(
        [store.get_job(running)["runs"][0]["id"], store.get_job(leased)["runs"][0]["id"]]
    )
    # Again: nothing left to cancel, no new events.
    assert store.cancel_job_set("default", "s") == {"cancelled": 0, "cancel_requested": 0}
    assert types(store, scheduled).count("cancelled") == 1
    assert types(store, running).count("cancel_requested") == 1


def test_cancel_job_set_with_a_state_filter(store: Store) -> None:
    q1, q2 = store.submit([spec(job_set="s"), spec(job_set="s")])
    route(store, SHARD)
    q3 = store.submit([spec(job_set="s")])[0]

    assert store.cancel_job_set("default", "s", states=["QUEUED"]) == {
        "cancelled": 1,
        "cancel_requested": 0,
    }
    assert [store.get_job(j)["state"] for j in (q1, q2, q3)] == [
        "SCHEDULED",
        "SCHEDULED",
        "CANCELLED",
    ]
