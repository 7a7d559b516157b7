"""Reads for /metrics: cheap grouped counts, computed at scrape time (and cached by the caller),
and the raw event tail the event-derived counters are computed from."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from jobfleet.lifecycle import RunState
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import events, jobs, runs, workers

ACTIVE_RUNS = [RunState.LEASED.value, RunState.RUNNING.value]


class StatsOps(StoreBase):
    def job_counts(self) -> list[tuple[str, str, int]]:
        """(queue, state, jobs), one grouped COUNT."""
        stmt = sa.select(jobs.c.queue, jobs.c.state, sa.func.count()).group_by(
            jobs.c.queue, jobs.c.state
        )
        with self.read() as conn:
            return [(q, s, int(n)) for q, s, n in conn.execute(stmt)]

    def worker_stats(self, *, fresh_after: float) -> list[dict[str, Any]]:
        """Per shard and worker state: workers, live ones, their capacity."""
        live = workers.c.last_heartbeat >= fresh_after
        stmt = sa.select(
            workers.c.shard,
            workers.c.state,
            sa.func.count().label("workers"),
            sa.func.sum(sa.case((live, 1), else_=0)).label("live"),
            sa.func.sum(sa.case((live, workers.c.cpu_milli), else_=0)).label("cpu_milli"),
            sa.func.sum(sa.case((live, workers.c.memory), else_=0)).label("memory"),
            sa.func.sum(sa.case((live, workers.c.gpu), else_=0)).label("gpu"),
        ).group_by(workers.c.shard, workers.c.state)
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def allocated(self) -> list[dict[str, Any]]:
        """Per shard: the resources held by active runs."""
        stmt = (
            sa.select(
                runs.c.shard,
                sa.func.sum(runs.c.cpu_milli).label("cpu_milli"),
                sa.func.sum(runs.c.memory).label("memory"),
                sa.func.sum(runs.c.gpu).label("gpu"),
            )
            .where(runs.c.state.in_(ACTIVE_RUNS))
            .group_by(runs.c.shard)
        )
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def raw_events_after(self, after: int, *, limit: int = 5000) -> list[Any]:
        """Events with id > `after` as rows (float times, raw payload), oldest first; only up
        to the commit horizon, as `events_after`."""
        horizon = self.event_horizon()
        if horizon is not None and horizon <= after:
            return []
        stmt = (
            sa.select(
                events.c.id,
                events.c.type,
                events.c.job_id,
                events.c.queue,
                events.c.time,
                events.c.payload,
            )
            .where(events.c.id > after)
            .order_by(events.c.id)
            .limit(limit)
        )
        if horizon is not None:
            stmt = stmt.where(events.c.id <= horizon)
        with self.read() as conn:
            return list(conn.execute(stmt).all())
