"""The commit horizon (store/horizon.py): writers take no common lock on PostgreSQL, so a
committed event id can be visible while a smaller one is still being committed. A reader must
not pass it: it reads up to the horizon, and a resumed reader then gets the held-back event
and everything after it, in id order, none skipped (PRODUCT.md §4)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
import sqlalchemy as sa

from jobfleet.models import JobSpec
from jobfleet.store import Store


@pytest.fixture
def pg(store: Store) -> Store:
    if store.backend != "postgresql":
        pytest.skip("SQLite has one writer at a time (BEGIN IMMEDIATE): commits in id order")
    return store


def _event(job_id: str, kind: str = "reprioritized") -> dict[str, Any]:
    return {
        "type": kind,
        "job_id": job_id,
        "run_id": None,
        "queue": "default",
        "job_set": "horizon",
        "state": "QUEUED",
        "attempt": 0,
        "time": time.time(),
        "payload": None,
    }


class Open:
    """A write transaction of `store` kept open by the test."""

    opened: list[Open] = []

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cm: AbstractContextManager[sa.Connection] = store.tx()
        self.conn = self.cm.__enter__()
        self.done = False
        Open.opened.append(self)

    def append(self, job_id: str) -> int:
        self.store._append(self.conn, [_event(job_id)])
        return int(self.conn.execute(sa.text("SELECT currval('events_id_seq')")).scalar_one())

    def commit(self) -> None:
        self.done = True
        self.cm.__exit__(None, None, None)

    def rollback(self) -> None:
        self.done = True
        self.cm.__exit__(RuntimeError, RuntimeError("rolled back"), None)


@pytest.fixture
def job(pg: Store) -> Iterator[str]:
    [job_id] = pg.submit([JobSpec(command=["true"], job_set="horizon")])
    yield job_id
    for tx in Open.opened:  # a failed test leaves none open (they would block the teardown)
        if not tx.done:
            tx.rollback()
    Open.opened.clear()


def _ids(store: Store, after: int) -> list[int]:
    return [e["id"] for e in store.events_after(after, limit=10_000)]


def test_a_later_id_committed_first_is_held_back_until_the_earlier_one_commits(
    pg: Store, job: str
) -> None:
    start = pg.last_event_id()
    slow = Open(pg)
    held = slow.append(job)  # drawn first, committed last
    later = pg.submit([JobSpec(command=["true"], job_set="horizon") for _ in range(3)])
    assert len(later) == 3
    first_page = _ids(pg, start)
    assert first_page == [], first_page  # the 6 later events wait for the one below them
    assert pg.last_event_id() < held  # a reader starting "from now" would not skip it either
    slow.commit()
    got = _ids(pg, start)
    assert got[0] == held
    assert got == sorted(got) and len(got) == 1 + 3 * 2
    assert _ids(pg, held) == got[1:]


def test_a_writer_that_took_its_xid_first_and_drew_its_id_last_is_held_back_too(
    pg: Store, job: str
) -> None:
    """`txid < pg_snapshot_xmin(...)` per event is not enough: here the committed event's
    transaction is the older one (smaller xid), yet its id is the larger."""
    start = pg.last_event_id()
    first = Open(pg)
    first.conn.execute(sa.text("SELECT pg_current_xact_id()"))  # the older transaction id
    second = Open(pg)
    held = second.append(job)  # the younger transaction draws the smaller id
    later = first.append(job)
    assert later > held
    first.commit()
    assert _ids(pg, start) == []  # `later` is committed but `held` may still come below it
    second.commit()
    assert _ids(pg, start) == [held, later]


def test_the_horizon_moves_past_a_writer_that_rolled_back(pg: Store, job: str) -> None:
    start = pg.last_event_id()
    gone = Open(pg)
    dropped = gone.append(job)
    gone.rollback()
    [after] = pg.submit([JobSpec(command=["true"], job_set="horizon")])
    got = pg.events_after(start)
    assert dropped not in [e["id"] for e in got]
    assert [e["job_id"] for e in got] == [after, after]
