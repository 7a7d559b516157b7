"""Group commit of single submissions (store/group.py): concurrent callers share one
transaction; each gets its job only once that transaction has committed; one refused
submission fails alone; a database failure fails its whole group and stores nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from jobfleet.errors import InvalidInput
from jobfleet.models import JobSpec
from jobfleet.store import JobFilter, Store, intake
from jobfleet.store.group import GroupCommit
from jobfleet.store.schema import jobs

N = 24


def spec(job_set: str, **kw: Any) -> JobSpec:
    return JobSpec(command=["true"], job_set=job_set, **kw)


def _group(store: Store) -> GroupCommit:
    store.submit_grouped(spec("warm-up"))
    group: GroupCommit = store.__dict__["_group"]
    return group


def _hold_first_commit(group: GroupCommit, waiting: int) -> list[int]:
    """The first commit waits until `waiting` other callers queue behind it: the next group
    then holds them all. Returns the sizes of the groups, as each one starts."""
    real = group._submit
    sizes: list[int] = []

    def held(specs: list[JobSpec], actor: str) -> list[dict[str, Any]]:
        if not sizes:
            deadline = time.monotonic() + 30
            while len(group._queue) < waiting:
                assert time.monotonic() < deadline, "the other callers never queued"
                time.sleep(0.005)
        sizes.append(len(specs))
        return real(specs, actor)

    group._submit = held
    return sizes


def _together(fns: list[Callable[[], Any]]) -> list[Any]:
    """Run `fns` in threads, the first one first (it leads); each one's result or error."""
    out: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        try:
            out[i] = fns[i]()
        except BaseException as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    threads[0].start()
    time.sleep(0.05)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    return out


def _events(store: Store, job_set: str) -> Counter[tuple[str, str]]:
    return Counter(
        (e["job_id"], e["type"])
        for e in store.events_after(0, limit=100_000)
        if e["job_set"] == job_set
    )


def test_concurrent_single_submissions_share_a_transaction(store: Store) -> None:
    group = _group(store)
    sizes = _hold_first_commit(group, N - 1)
    got = _together([lambda: store.submit_grouped(spec("many")) for _ in range(N)])
    assert all(isinstance(v, dict) for v in got), got
    ids = [v["id"] for v in got]
    assert len(set(ids)) == N
    assert sizes == [1, N - 1]  # two transactions for N submissions
    for job_id in ids:
        assert store.get_job(job_id)["state"] == "QUEUED"
    events = _events(store, "many")
    assert all(events[(j, "submitted")] == 1 for j in ids)
    assert sum(n for (_, kind), n in events.items() if kind == "submitted") == N


def test_a_refused_submission_fails_alone(store: Store) -> None:
    group = _group(store)
    sizes = _hold_first_commit(group, N - 1)
    bad = spec("mixed", depends_on=[{"job_id": "no-such-job"}])
    calls: list[Callable[[], Any]] = [lambda: store.submit_grouped(spec("mixed"))] * N
    calls[N // 2] = lambda: store.submit_grouped(bad)
    got = _together(calls)
    assert sizes[:2] == [1, N - 1]  # the bad one was in the group of N - 1
    assert isinstance(got[N // 2], InvalidInput)
    good = [v for i, v in enumerate(got) if i != N // 2]
    assert all(isinstance(v, dict) for v in good), good
    assert store.count_jobs(JobFilter(job_set="mixed")) == N - 1
    assert {j for j, _ in _events(store, "mixed")} == {v["id"] for v in good}


def test_a_database_failure_fails_every_submission_of_its_group(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = _group(store)
    sizes = _hold_first_commit(group, N - 1)
    real_insert = intake.insert_many

    def insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], **kw: Any) -> None:
        real_insert(conn, table, rows, **kw)
        if table is jobs and len(rows) > 1:  # the grouped transaction: jobs written, then it fails
            conn.execute(sa.text("SELECT * FROM no_such_table"))

    monkeypatch.setattr(intake, "insert_many", insert)
    got = _together([lambda: store.submit_grouped(spec("doomed")) for _ in range(N)])
    assert sizes == [1, N - 1]
    assert isinstance(got[0], dict)  # the leader's own transaction, before the failure
    assert all(isinstance(v, sa.exc.DBAPIError) for v in got[1:]), got
    assert store.count_jobs(JobFilter(job_set="doomed")) == 1
    assert {j for j, _ in _events(store, "doomed")} == {got[0]["id"]}


@pytest.mark.parametrize("n", [1, 5])
def test_a_submission_returns_only_after_its_commit(store: Store, n: int) -> None:
    group = _group(store)
    real = group._submit
    committed: set[str] = set()

    def watch(specs: list[JobSpec], actor: str) -> list[dict[str, Any]]:
        views = real(specs, actor)  # returns once the transaction has committed
        with store.read() as conn:  # another connection sees every job of the group
            for view in views:
                found = conn.execute(sa.select(jobs.c.id).where(jobs.c.id == view["id"]))
                if found.first() is not None:
                    committed.add(view["id"])
        return views

    group._submit = watch
    got = _together([lambda: store.submit_grouped(spec("durable")) for _ in range(n)])
    assert all(isinstance(v, dict) for v in got), got
    assert {v["id"] for v in got} <= committed
