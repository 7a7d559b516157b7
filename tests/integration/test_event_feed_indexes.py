"""A filtered event feed reads an index range (PostgreSQL): by job, by job set, by queue, and
several job sets or queues at once, on a table PostgreSQL has statistics for or not (issue 11)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from jobfleet.store import EventFilter, Store
from jobfleet.store.base import insert_many
from jobfleet.store.queries import QueryOps
from jobfleet.store.schema import events

N = 3000


def _fill(store: Store) -> None:
    now = time.time()
    rows = [
        {
            "type": "queued",
            "job_id": f"job-{i % 1000}",
            "run_id": None,
            "queue": "rare" if i % 100 == 0 else f"q{i % 3}",
            "job_set": f"set-{i % 100}",
            "state": "QUEUED",
            "attempt": 0,
            "time": now,
            "payload": None,
        }
        for i in range(N)
    ]
    with store.tx() as conn:
        insert_many(conn, events, rows)


def _plan(store: Store, flt: EventFilter) -> str:
    stmt = QueryOps.events_query(10, flt, limit=500, horizon=N, split=True)
    sql = str(stmt.compile(dialect=store.writer.dialect, compile_kwargs={"literal_binds": True}))
    with store.read() as conn:
        return "\n".join(conn.execute(sa.text("EXPLAIN " + sql)).scalars())


CASES = [
    (EventFilter(job_id="job-7"), "ix_events_job"),
    (EventFilter(job_sets=["set-7"]), "ix_events_job_set"),
    (EventFilter(job_sets=["set-7", "set-8"]), "ix_events_job_set"),
    (EventFilter(queues=["rare"]), "ix_events_queue"),
    (EventFilter(queues=["rare", "gone"]), "ix_events_queue"),
    (EventFilter(visible=["rare"]), "ix_events_queue"),
    (EventFilter(queues=["rare"], visible=["rare", "q1"]), "ix_events_queue"),
]


@pytest.mark.parametrize("analyzed", [False, True])
def test_a_filtered_feed_reads_an_index_range(store: Store, analyzed: bool) -> None:
    if store.backend != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    _fill(store)
    if analyzed:
        with store.writer.connect() as conn:
            conn.execute(sa.text("ANALYZE events"))
            conn.commit()
    for flt, index in CASES:
        plan = _plan(store, flt)
        assert index in plan, (flt, plan)
        assert "Seq Scan" not in plan, (flt, plan)
        assert "events_pkey" not in plan, (flt, plan)


def test_the_split_feed_returns_what_the_plain_one_does(store: Store) -> None:
    _fill(store)
    for flt, _ in CASES:
        ids = {}
        for split in (False, True):
            stmt = QueryOps.events_query(10, flt, limit=50, horizon=None, split=split)
            if split and store.backend != "postgresql":
                continue
            with store.read() as conn:
                ids[split] = [r.id for r in conn.execute(stmt)]
        assert ids[False] == sorted(ids[False]) and len(ids[False]) > 0, flt
        if True in ids:
            assert ids[True] == ids[False], flt
