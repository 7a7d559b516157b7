"""Reads: jobs (get, list with filters and cursor), events, history."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import InvalidInput, NotFound
from jobfleet.inputs import INT64_MAX
from jobfleet.store.base import StoreBase
from jobfleet.store.outbox import callback_summary
from jobfleet.store.schema import events, jobs, runs
from jobfleet.store.views import event_view, history_view, job_view

MAX_SPLIT = 64  # at most this many job sets or queues read as one index range each


@dataclass
class JobFilter:
    queue: str | None = None
    job_set: str | None = None
    states: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    visible: list[str] | None = None  # only jobs of these queues (None: every queue)
    array_id: str | None = None
    schedule: str | None = None


@dataclass
class EventFilter:
    queues: list[str] = field(default_factory=list)
    job_sets: list[str] = field(default_factory=list)
    job_id: str | None = None
    types: list[str] = field(default_factory=list)
    visible: list[str] | None = None  # only events of these queues (None: every queue)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        seq = int(value)
        if kind != "s" or not 0 <= seq <= INT64_MAX:
            raise ValueError
        return seq
    except ValueError as exc:
        raise InvalidInput(
            "cursor is not one this server gave out",
            [{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        ) from exc


class QueryOps(StoreBase):
    def get_job(self, job_id: str) -> dict[str, Any]:
        with self.read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            run_rows = conn.execute(
                sa.select(runs).where(runs.c.job_id == job_id).order_by(runs.c.attempt)
            ).all()
            view = job_view(row._mapping, [r._mapping for r in run_rows])
            if row.callback:  # only jobs with a callback_url: one more small read
                view["callbacks"] = callback_summary(conn, job_id)
        return view

    def job_queue(self, job_id: str) -> str:
        """The queue of a job (for permission checks); NotFound if there is no such job."""
        with self.read() as conn:
            queue = conn.execute(sa.select(jobs.c.queue).where(jobs.c.id == job_id)).scalar()
        if queue is None:
            raise NotFound(f"no job {job_id!r}")
        return str(queue)

    def list_jobs(
        self, flt: JobFilter, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first. The cursor is the last seq seen, so pages never shift under inserts."""
        stmt = sa.select(jobs).order_by(jobs.c.seq.desc()).limit(limit + 1)
        for cond in self._job_conditions(flt):
            stmt = stmt.where(cond)
        if cursor:
            stmt = stmt.where(jobs.c.seq < decode_cursor(cursor))
        with self.read() as conn:
            rows = conn.execute(stmt).all()
            page = rows[:limit]
            by_job: dict[str, list[Any]] = {r.id: [] for r in page}
            if page:
                run_rows = conn.execute(
                    sa.select(runs).where(runs.c.job_id.in_(list(by_job))).order_by(runs.c.attempt)
                ).all()
                for r in run_rows:
                    by_job[r.job_id].append(r._mapping)
        items = [job_view(r._mapping, by_job[r.id]) for r in page]
        nxt = encode_cursor(page[-1].seq) if len(rows) > limit else None
        return items, nxt

    def count_jobs(self, flt: JobFilter) -> int:
        stmt = sa.select(sa.func.count()).select_from(jobs)
        for cond in self._job_conditions(flt):
            stmt = stmt.where(cond)
        with self.read() as conn:
            return int(conn.execute(stmt).scalar() or 0)

    def _job_conditions(self, flt: JobFilter) -> list[Any]:
        conds: list[Any] = []
        if flt.queue:
            conds.append(jobs.c.queue == flt.queue)
        if flt.visible is not None:
            conds.append(jobs.c.queue.in_(flt.visible) if flt.visible else sa.false())
        if flt.job_set:
            conds.append(jobs.c.job_set == flt.job_set)
        if flt.array_id:
            conds.append(jobs.c.array_id == flt.array_id)
        if flt.schedule:
            conds.append(jobs.c.schedule == flt.schedule)
        if flt.states:
            conds.append(jobs.c.state.in_(flt.states))
        for key, value in flt.labels.items():
            if self.backend == "postgresql":
                conds.append(jobs.c.labels.op("@>")(sa.cast({key: value}, jobs.c.labels.type)))
            else:
                conds.append(sa.func.json_extract(jobs.c.labels, f'$."{key}"') == value)
        if flt.text:
            needle = flt.text.lower().replace("%", r"\%").replace("_", r"\_")
            conds.append(jobs.c.search.like(f"%{needle}%", escape="\\"))
        return conds

    def job_events(self, job_id: str) -> list[dict[str, Any]]:
        with self.read() as conn:
            self._must_exist(conn, job_id)
            rows = conn.execute(
                sa.select(events).where(events.c.job_id == job_id).order_by(events.c.id)
            ).all()
        return [event_view(r._mapping) for r in rows]

    def history(self, job_id: str) -> list[dict[str, Any]]:
        with self.read() as conn:
            self._must_exist(conn, job_id)
            rows = conn.execute(
                sa.select(events).where(events.c.job_id == job_id).order_by(events.c.id)
            ).all()
        return history_view([r._mapping for r in rows], time.time())

    def events_after(
        self, after: int, flt: EventFilter | None = None, *, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Events with id > `after`, oldest first, at most `limit`; only up to the commit
        horizon, so a reader that goes on after the last one returned misses none."""
        horizon = self.event_horizon()  # before the read: its snapshot comes after
        if horizon is not None and horizon <= after:
            return []
        stmt = self.events_query(
            after, flt, limit=limit, horizon=horizon, split=self.backend == "postgresql"
        )
        with self.read() as conn:
            rows = conn.execute(stmt).all()
        return [event_view(r._mapping) for r in rows]

    @staticmethod
    def events_query(
        after: int,
        flt: EventFilter | None,
        *,
        limit: int,
        horizon: int | None,
        split: bool = False,
    ) -> sa.Select[Any]:
        """The read of `events_after`. A job, job set or queue filter is an index range in id
        order ((job_id, id), (job_set, id), (queue, id)), so a poll never scans the table.
        `split` (PostgreSQL): several job sets or queues are one range each, merged in id
        order (a UNION ALL of ordered ranges; an IN list would walk the primary key)."""
        conds: list[Any] = [events.c.id > after]
        if horizon is not None:
            conds.append(events.c.id <= horizon)
        flt = flt or EventFilter()
        queues = list(dict.fromkeys(flt.queues)) or None
        if flt.visible is not None:
            seen = set(flt.visible)
            queues = [q for q in queues if q in seen] if queues else list(dict.fromkeys(seen))
            if not queues:
                conds.append(sa.false())
        if flt.types:
            conds.append(events.c.type.in_(flt.types))
        job_sets = list(dict.fromkeys(flt.job_sets))
        ranges: list[tuple[Any, list[str]]] = []  # (column, values): the last one is split
        if queues:
            ranges.append((events.c.queue, queues))
        if job_sets:
            ranges.append((events.c.job_set, job_sets))
        if flt.job_id:
            ranges.append((events.c.job_id, [flt.job_id]))
        if not (split and ranges and 1 < len(ranges[-1][1]) <= MAX_SPLIT):
            stmt = sa.select(events).where(*conds, *[c.in_(v) for c, v in ranges])
            return stmt.order_by(events.c.id).limit(limit)
        col, values = ranges.pop()
        conds += [c.in_(v) for c, v in ranges]
        parts = [
            sa.select(events).where(*conds, col == v).order_by(events.c.id).limit(limit)
            for v in values
        ]
        merged = sa.union_all(*parts).subquery()
        return sa.select(merged).order_by(merged.c.id).limit(limit)

    def last_event_id(self) -> int:
        """Where a reader starts to see only new events: the newest event id, or on PostgreSQL
        the commit horizon (an event still being committed below the newest is not skipped)."""
        horizon = self.event_horizon()
        if horizon is not None:
            return horizon
        with self.read() as conn:
            return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)

    @staticmethod
    def _must_exist(conn: sa.Connection, job_id: str) -> None:
        if conn.execute(sa.select(jobs.c.seq).where(jobs.c.id == job_id)).first() is None:
            raise NotFound(f"no job {job_id!r}")
