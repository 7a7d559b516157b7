"""Usage accounting (PRODUCT.md §14.3): what runs reserved, resources x time, over a window.

A run counts from RUNNING (`started_at`) to its end (`finished_at`: succeeded, failed,
preempted, lost or cancelled alike; a run still going counts until now), clipped to the
window [since, until). What it reserved is the run's own resources (a retry may have more
memory than the spec). One aggregate statement; runs are found by `ix_runs_window`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import sqlalchemy as sa

from jobfleet.lifecycle import RunState
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import jobs, runs

GroupBy = Literal["queue", "job_set", "principal", "worker", "shard"]
GROUPS: tuple[GroupBy, ...] = ("queue", "job_set", "principal", "worker", "shard")
FAILED = (RunState.FAILED.value, RunState.LOST.value)
GIB = float(2**30)


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
        """One item per group, largest CPU use first."""
        if q.visible is not None and not q.visible:
            return []
        dialect = self.backend
        now = time.time()
        since, until = sa.literal(q.since, sa.Float), sa.literal(q.until, sa.Float)
        start = _greatest(dialect, runs.c.started_at, since)
        end = _least(dialect, sa.func.coalesce(runs.c.finished_at, now), until)
        seconds = end - start
        group = _group_column(q.group_by).label("grp")
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
        ).where(
            runs.c.started_at.is_not(None),
            runs.c.started_at < q.until,
            sa.or_(runs.c.finished_at > q.since, runs.c.finished_at.is_(None)),
        )
        if q.group_by in ("queue", "job_set", "principal") or q.visible is not None:
            stmt = stmt.select_from(runs.join(jobs, jobs.c.id == runs.c.job_id))
        if q.visible is not None:
            stmt = stmt.where(jobs.c.queue.in_(q.visible))
        stmt = stmt.group_by(group)
        with self.read() as conn:
            rows = conn.execute(stmt).all()
        items = [_item(r) for r in rows]
        items.sort(key=lambda i: (-i["cpu_seconds"], str(i["group"])))
        return items


def _item(r: Any) -> dict[str, Any]:
    return {
        "group": r.grp,
        "runs": int(r.runs),
        "succeeded": int(r.succeeded or 0),
        "failed": int(r.failed or 0),
        "cpu_seconds": round(float(r.cpu or 0) / 1000, 3),
        "memory_gib_seconds": round(float(r.mem or 0) / GIB, 3),
        "gpu_seconds": round(float(r.gpu or 0), 3),
        "wall_seconds": round(float(r.wall or 0), 3),
    }
