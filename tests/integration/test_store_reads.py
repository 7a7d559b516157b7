"""Reads never see the past: a read that fails half-way through a result does not leave its
pooled connection holding an old snapshot (sqlite3 keeps a half-read statement, and with it
the snapshot, past the pool's rollback since Python 3.11; the scheduler saw queues that had
been deleted, and a refused request seemed to change the store)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from jobfleet.store import Store
from jobfleet.store.schema import queues


def names(store: Store) -> set[str]:
    with store.read() as conn:
        return set(conn.execute(sa.select(queues.c.name)).scalars())


def test_a_read_that_fails_half_way_leaves_no_stale_snapshot(store: Store) -> None:
    for i in range(50):
        store.upsert_queue(f"q{i}", config={})
    kept = []  # as a logged traceback keeps the frame, and the result, alive a while
    with pytest.raises(RuntimeError), store.read() as conn:
        result = conn.execute(sa.select(queues.c.name))
        kept.append(result)
        for _row in result:
            raise RuntimeError("a bad row")  # the rest of the result is never read
    store.upsert_queue("later", config={})
    # Every pooled reader connection sees the queue written after the failed read.
    for _ in range(20):
        assert "later" in names(store)


def test_a_queue_limit_is_a_finite_number_the_scheduler_can_scale() -> None:
    from pydantic import ValidationError

    from jobfleet.config import MaxResources, QueueConfig

    with pytest.raises(ValidationError, match="cpu"):
        MaxResources(cpu=1e308)  # x 1000 millicores would be infinite
    with pytest.raises(ValidationError, match="max_running_jobs"):
        QueueConfig(name="q", max_running_jobs=10**19)
    assert MaxResources(cpu=1000.5, gpu=8).cpu == 1000.5
