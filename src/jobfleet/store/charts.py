"""Series for the dashboard's overview charts, read from the event log: jobs finished per minute,
failures by category per minute, and how many jobs waited to run, over the last hour.

The event log is the history, so the series need no sampler of their own and survive restarts.
The read is bounded like the overview's other figures: the newest `scan` events at most.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import sqlalchemy as sa

from jobfleet.lifecycle import EventType, JobState
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import events, jobs

PENDING = frozenset({JobState.WAITING.value, JobState.QUEUED.value, JobState.SCHEDULED.value})
_ENTER = frozenset({EventType.SUBMITTED.value, EventType.REQUEUED.value})
_ACTIVE = frozenset({EventType.LEASED.value, EventType.RUNNING.value})
_FAILED = frozenset({EventType.FAILED.value, EventType.REQUEUED.value})
TOP_CATEGORIES = 5
OTHER = "other"


def failure_names(payload: dict[str, Any] | None) -> list[str]:
    """The categories a failure event counts under (its condition when the classifier named
    none)."""
    failure = (payload or {}).get("failure") or {}
    names = failure.get("categories") or [f"condition {failure.get('condition', '?')}"]
    return [str(n) for n in names]


def _queues(visible: list[str] | None) -> list[Any]:
    return [] if visible is None else [events.c.queue.in_(visible)]


class ChartOps(StoreBase):
    def overview_series(
        self,
        *,
        window: float = 3600.0,
        bucket: float = 60.0,
        scan: int = 200_000,
        visible: list[str] | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Per `bucket` over the last `window` seconds, oldest first: `t` (bucket starts, epoch
        seconds), `succeeded` and `failed` (jobs that ended so), `failures` (category → runs
        that failed, retried or final; the top few, the rest as "other") and `waiting` (jobs
        WAITING, QUEUED or SCHEDULED at the bucket's end: the exact count now, walked back
        through the events)."""
        now = time.time() if now is None else now
        n = max(1, int(window // bucket))
        start = now - n * bucket
        with self.read() as conn:
            top = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
            floor = max(0, int(top or 0) - scan)
            rows = conn.execute(
                sa.select(
                    events.c.job_id,
                    events.c.run_id,
                    events.c.type,
                    events.c.state,
                    events.c.time,
                    events.c.payload,
                )
                .where(events.c.id > floor, events.c.time >= start, *_queues(visible))
                .order_by(events.c.id)
            ).all()
            waiting_now = conn.execute(
                sa.select(sa.func.count()).where(
                    jobs.c.state.in_(sorted(PENDING)),
                    *([] if visible is None else [jobs.c.queue.in_(visible)]),
                )
            ).scalar()
        return _series(list(rows), start, bucket, n, int(waiting_now or 0))


def _series(
    rows: list[Any], start: float, bucket: float, n: int, waiting_now: int
) -> dict[str, Any]:
    succeeded = [0] * n
    failed = [0] * n
    delta = [0] * n  # jobs that entered minus jobs that left the waiting states, per bucket
    by_cat: list[Counter[str]] = [Counter() for _ in range(n)]
    running: set[str] = set()  # jobs seen leased or running in the window
    for job_id, run_id, etype, state, at, payload in rows:
        i = min(n - 1, max(0, int((at - start) // bucket)))
        if etype == EventType.SUCCEEDED.value:
            succeeded[i] += 1
        elif etype == EventType.FAILED.value:
            failed[i] += 1
        if etype in _FAILED and (payload or {}).get("failure"):
            by_cat[i].update(failure_names(payload))
        if etype in _ENTER and state in PENDING:
            delta[i] += 1
            running.discard(job_id)
        elif etype == EventType.LEASED.value:
            delta[i] -= 1
            running.add(job_id)
        elif etype in _ACTIVE:
            running.add(job_id)
        elif state not in PENDING and JobState(state).terminal:
            # Ended while it waited (cancelled, or a dependency failed): no run of it in sight.
            if job_id not in running and run_id is None:
                delta[i] -= 1
            running.discard(job_id)
    waiting = [0] * n
    level = waiting_now
    for i in range(n - 1, -1, -1):
        waiting[i] = max(0, level)
        level -= delta[i]
    totals: Counter[str] = Counter()
    for c in by_cat:
        totals.update(c)
    names = [name for name, _ in totals.most_common(TOP_CATEGORIES)]
    failures = {name: [c.get(name, 0) for c in by_cat] for name in names}
    rest = [sum(v for k, v in c.items() if k not in names) for c in by_cat]
    if any(rest):
        failures[OTHER] = rest
    return {
        "t": [start + i * bucket for i in range(n)],
        "bucket": bucket,
        "succeeded": succeeded,
        "failed": failed,
        "failures": failures,
        "waiting": waiting,
    }
