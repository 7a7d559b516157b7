"""The dashboard's store reads (store/fleet_views.py) on SQLite and PostgreSQL: table pages by
cursor in both orders, bulk cancel of a filter, events a page at a time, the bounded timeline,
per-queue counts and running resources, failures by category, workers with their load."""

from __future__ import annotations

import time

from jobfleet.failures import Condition, FailureInfo
from jobfleet.failures.classifier import Classifier, ErrorCategory
from jobfleet.protocol import Finished
from jobfleet.store import JobFilter, Store
from tests.integration.storekit import CAPACITY, WORKER, lease_one, register, spec, start


def test_pages_walk_every_job_once_newest_or_oldest_first(store: Store) -> None:
    ids = store.submit([spec(job_set="s", labels={"i": str(i)}) for i in range(7)])
    for oldest, expected in ((False, ids[::-1]), (True, ids)):
        seen, cursor = [], None
        while True:
            rows, cursor = store.page_jobs(JobFilter(), limit=3, cursor=cursor, oldest=oldest)
            seen += [r["id"] for r in rows]
            if cursor is None:
                break
        assert seen == expected
    rows, _ = store.page_jobs(JobFilter(labels={"i": "4"}))
    assert [r["id"] for r in rows] == [ids[4]]
    assert set(rows[0]) >= {"id", "state", "queue", "job_set", "priority", "cpu", "memory"}


def test_bulk_cancel_touches_only_live_jobs_the_filter_matches(store: Store) -> None:
    register(store)
    ids = store.submit([spec(job_set="bulk")])
    start(store, lease_one(store, ids[0]))  # the one running job: its cancel is requested
    keep = store.submit([spec(job_set="other")])
    ids += store.submit([spec(job_set="bulk") for _ in range(4)])
    flt = JobFilter(job_set="bulk")
    assert store.count_cancellable(flt) == 5

    counts = store.cancel_matching(flt, actor="tester")

    assert counts == {"cancelled": 4, "cancel_requested": 1}
    states = {i: store.get_job(i) for i in ids}
    assert states[ids[0]]["cancel_requested"] and states[ids[0]]["state"] == "RUNNING"
    assert all(states[i]["state"] == "CANCELLED" for i in ids[1:])
    assert store.get_job(keep[0])["state"] != "CANCELLED"
    assert store.count_cancellable(flt) == 0  # the running one is already cancelling
    assert store.cancel_matching(flt) == {"cancelled": 0, "cancel_requested": 0}


def test_events_come_a_page_at_a_time_newest_first(store: Store) -> None:
    [job_id] = store.submit([spec()])
    for p in range(6):
        store.reprioritize(job_id, p)
    everything = [e["id"] for e in store.job_events(job_id)][::-1]
    first, older = store.job_events_page(job_id, limit=5)
    second, last = store.job_events_page(job_id, limit=5, before=older)
    assert [e["id"] for e in first + second] == everything and last is None


def test_timeline_keeps_the_newest_entries_and_counts_the_rest(store: Store) -> None:
    [job_id] = store.submit([spec()])
    timeline, earlier = store.recent_history(job_id, limit=1)
    assert [t["state"] for t in timeline] == ["QUEUED"] and earlier == 1  # submitted, queued
    full, none = store.recent_history(job_id, limit=50)
    assert none == 0 and full[-1]["ongoing"]


def test_overview_counts_states_and_running_resources_per_queue(store: Store) -> None:
    register(store)
    ids = store.submit([spec(resources={"cpu": 2, "memory": "1Gi"}) for _ in range(3)])
    start(store, lease_one(store, ids[0]))
    [default] = [q for q in store.queue_overview() if q["name"] == "default"]
    assert default["total"] == 3
    assert default["states"] == {"RUNNING": 1, "LEASED": 2}  # one cycle leased all three
    assert default["running"] == {"jobs": 3, "cpu": 6.0, "memory": 3 * 2**30, "gpu": 0}
    assert "default" in store.queue_names()
    assert store.event_rate(window=60) > 0
    assert store.event_rate(window=60, scan=1) == 1 / 60  # looks at the newest event only


def test_finished_counts_can_come_from_a_cache(store: Store) -> None:
    [job_id] = store.submit([spec()])
    store.cancel(job_id)
    assert store.final_counts() == {("default", "CANCELLED"): 1}
    stale = {("default", "SUCCEEDED"): 7}
    [default] = [q for q in store.queue_overview(final=stale) if q["name"] == "default"]
    assert default["states"] == {"SUCCEEDED": 7} and default["total"] == 7


def test_recent_failures_are_counted_by_category_else_condition(store: Store) -> None:
    """Categories are the server's (set where the failure is observed): exit code 3 is one."""
    rule = {"name": "cuda-oom", "rules": [{"exit_codes": {"operator": "In", "values": [3]}}]}
    store.classifier = Classifier([ErrorCategory.model_validate(rule)])
    register(store)
    for code in (3, 1):
        a = lease_one(store, store.submit([spec()])[0])
        failure = FailureInfo(condition=Condition.EXIT_NONZERO, exit_code=code)
        store.report(
            WORKER,
            [],
            [Finished(a.run_id, a.fencing, "failed", time.time(), code, failure=failure)],
        )
    found = store.recent_failures()
    assert found["total"] == 2
    assert dict(found["by"]) == {"cuda-oom": 1, "condition EXIT_NONZERO": 1}
    assert store.recent_failures(visible=["default"])["total"] == 2
    assert store.recent_failures(visible=["other"])["total"] == 0  # the dashboard's filter
    assert store.recent_failures(visible=[])["total"] == 0
    assert store.event_rate(visible=[]) == 0 < store.event_rate(visible=["default"])


def test_workers_show_capacity_allocation_and_liveness(store: Store) -> None:
    register(store)
    [job_id] = store.submit([spec(resources={"cpu": 4, "memory": "2Gi"})])
    start(store, lease_one(store, job_id))
    [w] = store.dashboard_workers(lease_timeout=30)
    assert w["name"] == WORKER and w["alive"] and not w["draining"]
    assert w["capacity"]["cpu"] == CAPACITY.cpu_milli / 1000
    assert w["allocated"]["jobs"] == 1 and w["allocated"]["cpu"] == 4.0
    assert w["utilisation"] == 4.0 / 16.0
    [stale] = store.dashboard_workers(lease_timeout=-1)
    assert not stale["alive"] and stale["state"] == "UNREACHABLE"  # as the fleet API says


def test_workers_show_the_fleet_states_and_the_isolation_backend(store: Store) -> None:
    info = {"isolation": {"backend": "cgroup2", "sealed": False}}
    store.register_worker(WORKER, "s1", CAPACITY, info=info)
    [w] = store.dashboard_workers(lease_timeout=30)
    assert (w["state"], w["isolation"], w["alive"]) == ("READY", "cgroup2", True)
    store.set_worker_state(WORKER, "DRAINING")
    [w] = store.dashboard_workers(lease_timeout=30)
    assert (w["state"], w["draining"], w["alive"]) == ("DRAINING", True, True)
    store.set_worker_state(WORKER, "OFFLINE")
    [w] = store.dashboard_workers(lease_timeout=-1)  # silent, yet OFFLINE says more
    assert (w["state"], w["alive"]) == ("OFFLINE", False)
    assert w["state"] == store.worker_views(fresh_after=time.time() + 1)[0]["state"]


def test_the_job_page_reads_only_the_newest_runs(store: Store) -> None:
    from jobfleet.store.synthetic import fill_history

    [job_id] = store.submit([spec()])
    run_ids = fill_history(store, job_id, 25)  # five attempts that ran and were requeued
    view = store.job_page_view(job_id, runs_limit=2)
    assert [r["id"] for r in view["runs"]] == run_ids[-2:] and view["runs_total"] == 5
    assert store.run_progress(job_id, None) == (run_ids[-1], "LOST")
    assert store.run_progress(job_id, run_ids[0]) == (run_ids[0], "LOST")
    [fresh] = store.submit([spec()])
    assert store.run_progress(fresh, None) == (None, "QUEUED")


def test_overview_series_count_ends_failures_and_waiting_jobs_per_minute(store: Store) -> None:
    """The overview charts' data from the event log: one job succeeded, one failed (exit 3 is
    the category cuda-oom), one cancelled while queued, two still waiting; the waiting line
    ends at the exact count now and rises through the minute the jobs were submitted."""
    rule = {"name": "cuda-oom", "rules": [{"exit_codes": {"operator": "In", "values": [3]}}]}
    store.classifier = Classifier([ErrorCategory.model_validate(rule)])
    register(store)
    ok, bad, gone = store.submit([spec(), spec(), spec()])
    store.submit([spec(resources={"cpu": 500}), spec(resources={"cpu": 500})])  # wait: no room
    for job_id, code in ((ok, 0), (bad, 3)):
        a = lease_one(store, job_id)
        start(store, a)
        failure = (
            None if code == 0 else FailureInfo(condition=Condition.EXIT_NONZERO, exit_code=code)
        )
        outcome = "succeeded" if code == 0 else "failed"
        store.report(
            WORKER, [], [Finished(a.run_id, a.fencing, outcome, time.time(), code, failure=failure)]
        )
    store.cancel(gone)

    series = store.overview_series(window=600, bucket=60)
    assert len(series["t"]) == 10 and series["t"] == sorted(series["t"])
    assert sum(series["succeeded"]) == 1 and sum(series["failed"]) == 1
    assert series["succeeded"][-1] == 1  # all of it happened in the last minute
    assert {k: sum(v) for k, v in series["failures"].items()} == {"cuda-oom": 1}
    assert series["waiting"][-1] == 2  # exact: the two jobs no worker can hold
    assert series["waiting"][:-1] == [0] * 9  # nothing waited before they were submitted
    assert store.overview_series(visible=[])["waiting"][-1] == 0  # a principal of no queue
