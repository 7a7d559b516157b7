"""Two store objects on one database racing each other, and concurrent writers against a reader
resuming the event stream: exactly-once moves, one event per transition, no gap, no duplicate
(PRODUCT.md §3, §4, §7)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobfleet.errors import IllegalTransition, StaleState
from jobfleet.models import JobSpec
from jobfleet.protocol import Capacity, Started
from jobfleet.store import EventFilter, Store
from tests.integration.storekit import pending, plan_shard, route

SHARD = "default"
WORKER = "w1"


def spec(**kw: Any) -> JobSpec:
    kw.setdefault("command", ["true"])
    return JobSpec(**kw)


@pytest.fixture
def other(store: Store, db_url: str) -> Iterator[Store]:
    """A second, independent Store on the same database (as another server process would be)."""
    s = Store(db_url)
    yield s
    s.close()


def run_together(fns: list[Callable[[], None]], *, timeout: float = 60.0) -> None:
    """Start all `fns` at once (a barrier), wait for them, re-raise the first error."""
    barrier = threading.Barrier(len(fns))
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def target() -> None:
            try:
                barrier.wait(timeout=timeout)
                fn()
            except BaseException as exc:
                errors.append(exc)

        return target

    threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread did not finish in time"
    if errors:
        raise errors[0]


def events_of(store: Store, job_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    wanted = set(job_ids)
    out: dict[str, list[dict[str, Any]]] = {j: [] for j in job_ids}
    for e in drain(store, 0):
        if e["job_id"] in wanted:
            out[e["job_id"]].append(e)
    return out


def drain(store: Store, after: int, *, limit: int = 500) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        page = store.events_after(after, limit=limit)
        if not page:
            return got
        got += page
        after = page[-1]["id"]


def test_two_routers_move_each_job_exactly_once(store: Store, other: Store) -> None:
    ids = store.submit([spec() for _ in range(120)])
    moved: dict[str, list[int]] = {"east": [], "west": []}

    def router(s: Store, shard: str) -> Callable[[], None]:
        def loop() -> None:
            for _ in range(1000):
                n = route(s, shard, limit=7)
                moved[shard].append(n)
                if n == 0:
                    return
            raise AssertionError("routing did not finish")

        return loop

    run_together([router(store, "east"), router(other, "west")])

    assert sum(moved["east"]) + sum(moved["west"]) == len(ids)
    east = {d.job_id for d in pending(store, "east")}
    west = {d.job_id for d in pending(other, "west")}
    assert east.isdisjoint(west)
    assert east | west == set(ids)
    assert len(east) == sum(moved["east"])
    per_job = events_of(store, ids)
    for job_id in ids:
        job = store.get_job(job_id)
        assert job["state"] == "SCHEDULED"
        scheduled = [e for e in per_job[job_id] if e["type"] == "scheduled"]
        assert len(scheduled) == 1, (job_id, per_job[job_id])
        assert scheduled[0]["shard"] == job["shard"]
        assert [e["type"] for e in per_job[job_id]] == ["submitted", "queued", "scheduled"]


def test_racing_cancels_cancel_each_job_once(store: Store, other: Store) -> None:
    ids = store.submit([spec() for _ in range(40)])
    route(store, SHARD, limit=20)  # half SCHEDULED, half QUEUED: both cancel at once
    outcome: dict[str, list[str]] = {j: [] for j in ids}
    lock = threading.Lock()

    def canceller(s: Store, name: str) -> Callable[[], None]:
        def loop() -> None:
            for job_id in ids:
                try:
                    s.cancel(job_id, actor=name)
                    result = "ok"
                except (IllegalTransition, StaleState) as exc:
                    result = type(exc).__name__
                with lock:
                    outcome[job_id].append(result)

        return loop

    run_together([canceller(store, "a"), canceller(other, "b")])

    per_job = events_of(store, ids)
    for job_id in ids:
        assert sorted(outcome[job_id]) in (
            ["IllegalTransition", "ok"],
            ["StaleState", "ok"],
        ), outcome[job_id]
        assert store.get_job(job_id)["state"] == "CANCELLED"
        types = [e["type"] for e in per_job[job_id]]
        assert types.count("cancelled") == 1
        assert types[-1] == "cancelled"


def test_racing_cancels_of_running_jobs_request_once(store: Store, other: Store) -> None:
    store.register_worker(WORKER, SHARD, Capacity(cpu_milli=64_000, memory=2**40))
    ids = store.submit([spec() for _ in range(20)])
    route(store, SHARD)
    plan = plan_shard(store, SHARD)
    assert store.lease(SHARD, plan.placed, lease_timeout=60) == 20
    assigned = store.assignments(WORKER)
    store.report(WORKER, [Started(a.run_id, a.fencing, time.time()) for a in assigned], [])
    wins: Counter[str] = Counter()
    lock = threading.Lock()

    def canceller(s: Store) -> Callable[[], None]:
        def loop() -> None:
            for job_id in ids:
                try:
                    s.cancel(job_id)
                except (IllegalTransition, StaleState):
                    continue
                with lock:
                    wins[job_id] += 1

        return loop

    run_together([canceller(store), canceller(other)])

    assert wins == Counter({j: 1 for j in ids})
    per_job = events_of(store, ids)
    for job_id in ids:
        job = store.get_job(job_id)
        assert (job["state"], job["cancel_requested"]) == ("RUNNING", True)
        assert [e["type"] for e in per_job[job_id]].count("cancel_requested") == 1
    assert sorted(store.cancel_orders(WORKER)) == sorted(a.run_id for a in assigned)


def test_route_racing_cancel_leaves_every_job_in_one_legal_history(
    store: Store, other: Store
) -> None:
    ids = store.submit([spec() for _ in range(60)])

    def router() -> None:
        while route(store, SHARD, limit=5):
            pass

    def canceller() -> None:
        for job_id in ids:
            other.cancel(job_id)  # QUEUED or SCHEDULED: both cancel at once, never refused

    run_together([router, canceller])

    per_job = events_of(store, ids)
    for job_id in ids:
        assert store.get_job(job_id)["state"] == "CANCELLED"
        assert [e["type"] for e in per_job[job_id]] in (
            ["submitted", "queued", "cancelled"],
            ["submitted", "queued", "scheduled", "cancelled"],
        )
    assert pending(store, SHARD) == []


def test_concurrent_submits_with_one_client_id_make_one_job(store: Store, other: Store) -> None:
    keys = [f"key-{i}" for i in range(25)]
    got: dict[str, list[str]] = {"a": [], "b": []}

    def submitter(s: Store, name: str) -> Callable[[], None]:
        def loop() -> None:
            for k in keys:
                got[name] += s.submit([spec(client_id=k)])

        return loop

    run_together([submitter(store, "a"), submitter(other, "b")])

    assert got["a"] == got["b"]
    assert len(set(got["a"])) == len(keys)
    evs = drain(store, 0)
    assert len(evs) == 2 * len(keys)


def test_events_after_pages_across_a_batch_return_every_event_once(store: Store) -> None:
    store.submit([spec(job_set="before")])
    start = store.last_event_id()
    ids = store.submit([spec(job_set="batch") for _ in range(37)])

    seen: list[dict[str, Any]] = []
    after = start
    for _ in range(100):
        page = store.events_after(after, limit=5)
        assert len(page) <= 5
        if not page:
            break
        seen += page
        after = page[-1]["id"]

    assert len(seen) == 2 * len(ids)
    event_ids = [e["id"] for e in seen]
    assert event_ids == sorted(set(event_ids))
    assert event_ids[0] > start
    assert [(e["job_id"], e["type"]) for e in seen] == [
        (j, t) for j in ids for t in ("submitted", "queued")
    ]
    # With a filter, paging still yields each matching event once.
    flt = EventFilter(types=["queued"], job_sets=["batch"])
    queued: list[dict[str, Any]] = []
    after = 0
    while page := store.events_after(after, flt, limit=4):
        queued += page
        after = page[-1]["id"]
    assert [e["job_id"] for e in queued] == ids


def test_concurrent_submitters_then_a_resumed_stream_has_no_gap_and_no_duplicate(
    store: Store, db_url: str
) -> None:
    """4 writer threads x 50 batches, each through its own Store, while a reader tails the
    stream resuming after the last id it saw; afterwards the stream from 0 has every event."""
    threads, batches, per_batch = 4, 50, 3
    stores = [Store(db_url) for _ in range(threads)]
    submitted: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    tailed: list[int] = []

    def writer(s: Store, n: int) -> Callable[[], None]:
        def loop() -> None:
            for b in range(batches):
                ids = s.submit([spec(job_set=f"t{n}", command=["x", str(b)])] * per_batch)
                with lock:
                    submitted.extend(ids)

        return loop

    def tail() -> None:
        after = 0
        while True:
            finished = done.is_set()  # read before the page: a last page after it is complete
            page = store.events_after(after, limit=97)
            tailed.extend(e["id"] for e in page)
            if page:
                after = page[-1]["id"]
            elif finished:
                return

    def writers() -> None:
        try:
            run_together([writer(s, i) for i, s in enumerate(stores)])
        finally:
            done.set()

    try:
        run_together([writers, tail], timeout=120)
    finally:
        for s in stores:
            s.close()

    n_jobs = threads * batches * per_batch
    assert len(submitted) == len(set(submitted)) == n_jobs
    evs = drain(store, 0)
    ids = [e["id"] for e in evs]
    assert len(ids) == 2 * n_jobs
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert Counter(e["job_id"] for e in evs) == Counter({j: 2 for j in submitted})
    for j_events in events_of(store, submitted[:20]).values():
        assert [e["type"] for e in j_events] == ["submitted", "queued"]
    # The reader that tailed while they wrote saw exactly the same ids: no gap, no duplicate.
    assert tailed == ids


def test_two_master_routers_with_their_own_plans_move_each_job_exactly_once(
    store: Store, other: Store
) -> None:
    """`route_to` (the master router's write): both see the same intake and send every job to
    a different shard; each job still lands in exactly one shard with one `scheduled` event."""
    ids = store.submit([spec() for _ in range(120)])
    moved: dict[str, int] = {}

    def router(s: Store, shard: str) -> Callable[[], None]:
        def go() -> None:
            moved[shard] = s.route_to({n.job_id: shard for n in s.intake()})

        return go

    run_together([router(store, "east"), router(other, "west")])

    assert moved["east"] + moved["west"] == len(ids)
    per_job = events_of(store, ids)
    for job_id in ids:
        scheduled = [e for e in per_job[job_id] if e["type"] == "scheduled"]
        assert len(scheduled) == 1 and scheduled[0]["shard"] == store.get_job(job_id)["shard"]
