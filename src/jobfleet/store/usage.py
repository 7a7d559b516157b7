"""Usage accounting (PRODUCT.md §14.3): what runs reserved, resources x time, over a window.

A run counts from RUNNING (`started_at`) to its end (`finished_at`: succeeded, failed,
preempted, lost or cancelled alike; a run still going counts until now), clipped to the
window [since, until). What it reserved is the run's own resources (a retry may have more
memory than the spec). Runs are found by `ix_runs_window`; the whole hours of a long window
come from `usage_hours`, rolled up once per hour from the runs that ended in it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import sqlalchemy as sa

from jobfleet.lifecycle import RunState
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import counters, jobs, runs, usage_hours

GroupBy = Literal["queue", "job_set", "principal", "worker", "shard"]
GROUPS: tuple[GroupBy, ...] = ("queue", "job_set", "principal", "worker", "shard")
FAILED = (RunState.FAILED.value, RunState.LOST.value)
GIB = float(2**30)
HOUR = 3600.0
SETTLE = 900.0  # an hour is rolled up this long after it ended: no run ends in it any more
ROLLED = "usage_rolled_until"
CHUNK = 7 * 86400.0  # of history rolled up per call


@dataclass(frozen=True, slots=True)
class UsageQuery:
    since: float
    until: float
    group_by: GroupBy = "queue"
    visible: list[str] | None = None  # only runs of jobs in these queues (None: every queue)


class Usage(Protocol):
    def usage(self, q: UsageQuery) -> list[dict[str, Any]]: ...


def _greatest(dialect: str, a: Any, b: Any) -> Any:
    return sa.func.greatest(a, b) if dialect == "postgresql" else sa.func.max(a, b)


def _least(dialect: str, a: Any, b: Any) -> Any:
    return sa.func.least(a, b) if dialect == "postgresql" else sa.func.min(a, b)


def _group_column(group_by: GroupBy) -> Any:
    if group_by == "queue":
        return jobs.c.queue
    if group_by == "job_set":
        return jobs.c.queue + "/" + jobs.c.job_set
    if group_by == "principal":
        return sa.func.coalesce(jobs.c.principal, "(unknown)")
    return runs.c.worker if group_by == "worker" else runs.c.shard


class UsageOps(StoreBase):
    def usage(self, q: UsageQuery) -> list[dict[str, Any]]:
        """One item per group, largest CPU use first.

        The whole hours of the window whose runs all began inside it are read from
        `usage_hours`; the rest (the window's ragged ends, runs still going, hours with a run
        that began before `since`) from the runs themselves, clipped to the window."""
        if q.visible is not None and not q.visible:
            return []
        now = time.time()
        rolled = self.roll_up_usage(now)
        lo = math.ceil(q.since / HOUR) * HOUR
        hi = min(math.floor(q.until / HOUR) * HOUR, rolled)
        totals: dict[Any, list[float]] = {}
        with self.read() as conn:
            dirty: list[float] = []
            if lo < hi:
                dirty = self._dirty_hours(conn, lo, hi, q.since)
                _add(totals, conn.execute(self._rolled_sums(q, lo, hi, dirty)))
            _add(totals, conn.execute(self._run_sums(q, now, (lo, hi) if lo < hi else None, dirty)))
        items = [_item(group, sums) for group, sums in totals.items()]
        items.sort(key=lambda i: (-i["cpu_seconds"], str(i["group"])))
        return items

    def roll_up_usage(self, now: float | None = None, *, most: float = CHUNK) -> float:
        """Roll up the runs of the hours that are over (by SETTLE) and not rolled up yet, at
        most `most` seconds of them per call (the write lock is held for one chunk only: a
        long history is rolled up over several calls, by the queries and by the leader's
        housekeeping); returns the time up to which usage_hours holds every ended run."""
        now = time.time() if now is None else now
        target = math.floor((now - SETTLE) / HOUR) * HOUR
        with self.read() as conn:
            if _rolled_until(conn) >= target:
                return float(_rolled_until(conn))
        with self.tx() as conn:  # the write lock: one roll-up at a time, across servers
            done = _rolled_until(conn)
            if done >= target:
                return float(done)
            if done == 0:  # the first roll-up starts at the first run that ended
                first = conn.execute(sa.select(sa.func.min(runs.c.finished_at))).scalar()
                done = math.floor(float(first if first is not None else target) / HOUR) * HOUR
            upto = min(target, done + most)
            conn.execute(self._roll_up_statement(done, upto))
            value = {"value": int(upto)}
            if not conn.execute(
                counters.update().where(counters.c.name == ROLLED).values(**value)
            ).rowcount:
                conn.execute(counters.insert().values(name=ROLLED, **value))
        return float(upto)

    def _bucket(self, column: Any) -> Any:
        if self.backend == "postgresql":
            return sa.func.floor(column / HOUR) * HOUR
        return sa.cast(column / HOUR, sa.Integer) * HOUR

    def _roll_up_statement(self, done: float, target: float) -> Any:
        hour = self._bucket(runs.c.finished_at).label("hour")
        principal = sa.func.coalesce(jobs.c.principal, "")
        seconds = runs.c.finished_at - runs.c.started_at
        select = (
            sa.select(
                hour,
                jobs.c.queue,
                jobs.c.job_set,
                principal,
                runs.c.worker,
                runs.c.shard,
                sa.func.count(),
                sa.func.sum(sa.case((runs.c.state == RunState.SUCCEEDED.value, 1), else_=0)),
                sa.func.sum(sa.case((runs.c.state.in_(FAILED), 1), else_=0)),
                sa.func.sum(runs.c.cpu_milli * seconds),
                sa.func.sum(runs.c.memory * seconds),
                sa.func.sum(runs.c.gpu * seconds),
                sa.func.sum(seconds),
                sa.func.min(runs.c.started_at),
            )
            .select_from(runs.join(jobs, jobs.c.id == runs.c.job_id))
            .where(
                runs.c.finished_at >= done,
                runs.c.finished_at < target,
                runs.c.started_at.is_not(None),
            )
            .group_by(hour, jobs.c.queue, jobs.c.job_set, principal, runs.c.worker, runs.c.shard)
        )
        cols = [c.name for c in usage_hours.columns]
        return usage_hours.insert().from_select(cols, select)

    @staticmethod
    def _dirty_hours(conn: sa.Connection, lo: float, hi: float, since: float) -> list[float]:
        """Rolled-up hours in [lo, hi) with a run that began before `since`."""
        rows = conn.execute(
            sa.select(usage_hours.c.hour)
            .where(usage_hours.c.hour >= lo, usage_hours.c.hour < hi)
            .group_by(usage_hours.c.hour)
            .having(sa.func.min(usage_hours.c.min_started) < since)
        ).scalars()
        return [float(h) for h in rows]

    @staticmethod
    def _rolled_sums(q: UsageQuery, lo: float, hi: float, dirty: list[float]) -> Any:
        u = usage_hours.c
        group = {
            "queue": u.queue,
            "job_set": u.queue + "/" + u.job_set,
            "principal": sa.case((u.principal == "", "(unknown)"), else_=u.principal),
            "worker": u.worker,
            "shard": u.shard,
        }[q.group_by].label("grp")
        stmt = sa.select(
            group,
            sa.func.sum(u.runs).label("runs"),
            sa.func.sum(u.succeeded).label("succeeded"),
            sa.func.sum(u.failed).label("failed"),
            sa.func.sum(u.cpu).label("cpu"),
            sa.func.sum(u.mem).label("mem"),
            sa.func.sum(u.gpu).label("gpu"),
            sa.func.sum(u.wall).label("wall"),
        ).where(u.hour >= lo, u.hour < hi)
        if dirty:
            stmt = stmt.where(u.hour.not_in(dirty))
        if q.visible is not None:
            stmt = stmt.where(u.queue.in_(q.visible))
        return stmt.group_by(group)

    def _run_sums(
        self, q: UsageQuery, now: float, rolled: tuple[float, float] | None, dirty: list[float]
    ) -> Any:
        """The runs not in the rolled-up hours used, clipped to the window."""
        dialect = self.backend
        since, until = sa.literal(q.since, sa.Float), sa.literal(q.until, sa.Float)
        start = _greatest(dialect, runs.c.started_at, since)
        end = _least(dialect, sa.func.coalesce(runs.c.finished_at, now), until)
        seconds = end - start
        group = _group_column(q.group_by).label("grp")
        f = runs.c.finished_at
        if rolled is None:
            ended = sa.or_(f > q.since, f.is_(None))
        else:
            lo, hi = rolled
            ended = sa.or_(
                f.is_(None),
                sa.and_(f > q.since, f < lo),
                f >= hi,
                *(sa.and_(f >= d, f < d + HOUR) for d in dirty),
            )
        stmt = sa.select(
            group,
            sa.func.count().label("runs"),
            sa.func.sum(sa.case((runs.c.state == RunState.SUCCEEDED.value, 1), else_=0)).label(
                "succeeded"
            ),
            sa.func.sum(sa.case((runs.c.state.in_(FAILED), 1), else_=0)).label("failed"),
            sa.func.sum(runs.c.cpu_milli * seconds).label("cpu"),
            sa.func.sum(runs.c.memory * seconds).label("mem"),
            sa.func.sum(runs.c.gpu * seconds).label("gpu"),
            sa.func.sum(seconds).label("wall"),
        ).where(runs.c.started_at.is_not(None), runs.c.started_at < q.until, ended)
        if q.group_by in ("queue", "job_set", "principal") or q.visible is not None:
            stmt = stmt.select_from(runs.join(jobs, jobs.c.id == runs.c.job_id))
        if q.visible is not None:
            stmt = stmt.where(jobs.c.queue.in_(q.visible))
        return stmt.group_by(group)


def _rolled_until(conn: sa.Connection) -> float:
    value = conn.execute(sa.select(counters.c.value).where(counters.c.name == ROLLED)).scalar()
    return float(value or 0)


def _add(totals: dict[Any, list[float]], rows: Any) -> None:
    for r in rows:
        acc = totals.setdefault(r.grp, [0.0] * 7)
        for i, v in enumerate((r.runs, r.succeeded, r.failed, r.cpu, r.mem, r.gpu, r.wall)):
            acc[i] += float(v or 0)


def _item(group: Any, s: list[float]) -> dict[str, Any]:
    return {
        "group": group,
        "runs": int(s[0]),
        "succeeded": int(s[1]),
        "failed": int(s[2]),
        "cpu_seconds": round(s[3] / 1000, 3),
        "memory_gib_seconds": round(s[4] / GIB, 3),
        "gpu_seconds": round(s[5], 3),
        "wall_seconds": round(s[6], 3),
    }
