"""Retention (PRODUCT.md §10): finished jobs are deleted once their `ttl_after_finished` passed.

The TTL is the job's own (kept in `jobs.ttl`; `expires_at = finished_at + ttl` is set by the
terminal transition), else its queue's `ttl_after_finished`, else the deployment's. A job goes
with its events, runs, callback outbox rows, checkpoints and shipped log chunks, in one
short transaction per batch that takes no event lock (it appends no event; the jobs are
terminal, so nothing else writes them). Until the TTL has passed nothing is deleted. Two
kinds of finished jobs are kept a little longer: one a WAITING job still depends on (its
dependency would turn "unknown"), and one whose callback is still being retried (until
delivery ends or is given up).

Deleting events leaves gaps in event ids: a stream resumed after an id keeps working, it just
never sees the deleted job's events again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from jobfleet.lifecycle import JobState
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import (
    callback_outbox,
    checkpoints,
    events,
    jobs,
    log_chunks,
    queues,
    runs,
)

TERMINAL = [s.value for s in JobState if s.terminal]


@dataclass
class Deleted:
    """What one batch deleted; `runs` lists (run id, the job had its own working_dir)."""

    counts: dict[str, int] = field(default_factory=dict)
    runs: list[tuple[str, bool]] = field(default_factory=list)


class RetentionOps(StoreBase):
    def queue_ttls(self) -> dict[str, float]:
        """Queues with a `ttl_after_finished` default."""
        with self.read() as conn:
            rows = conn.execute(sa.select(queues.c.name, queues.c.config)).all()
        out = {r.name: (r.config or {}).get("ttl_after_finished") for r in rows}
        return {name: float(ttl) for name, ttl in out.items() if ttl}

    def expired_jobs(
        self,
        *,
        default: float | None,
        queue_ttls: dict[str, float],
        limit: int,
        now: float | None = None,
    ) -> list[str]:
        """Up to `limit` finished jobs whose TTL has passed and that may go now."""
        now = time.time() if now is None else now
        conds = [jobs.c.expires_at < now]
        for queue, ttl in queue_ttls.items():
            conds.append(
                sa.and_(jobs.c.queue == queue, jobs.c.ttl.is_(None), jobs.c.finished_at < now - ttl)
            )
        if default is not None:
            conds.append(
                sa.and_(
                    jobs.c.queue.not_in(list(queue_ttls)),
                    jobs.c.ttl.is_(None),
                    jobs.c.finished_at < now - default,
                )
            )
        found: list[str] = []
        with self.read() as conn:
            held = self._depended_on(conn)
            for cond in conds:
                stmt = sa.select(jobs.c.id).where(cond, jobs.c.state.in_(TERMINAL), _no_pending())
                if held:
                    stmt = stmt.where(jobs.c.id.not_in(list(held)))
                found += conn.execute(stmt.limit(limit - len(found))).scalars()
                if len(found) >= limit:
                    break
        return list(dict.fromkeys(found))

    @staticmethod
    def _depended_on(conn: sa.Connection) -> set[str]:
        """The jobs that WAITING jobs depend on (usually none wait: one indexed probe)."""
        specs = conn.execute(
            sa.select(jobs.c.spec).where(jobs.c.state == JobState.WAITING.value).limit(10_000)
        ).scalars()
        return {d["job_id"] for spec in specs for d in spec.get("depends_on", [])}

    def delete_jobs(self, job_ids: list[str]) -> Deleted:
        """Delete finished jobs with everything that belongs to them, in one transaction."""
        out = Deleted()
        if not job_ids:
            return out
        with self.tx() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.spec).where(
                    jobs.c.id.in_(job_ids), jobs.c.state.in_(TERMINAL)
                )
            ).all()
            ids = [r.id for r in rows]
            own_dir = {r.id for r in rows if r.spec.get("working_dir")}
            run_rows = conn.execute(
                sa.select(runs.c.id, runs.c.job_id).where(runs.c.job_id.in_(ids))
            ).all()
            out.runs = [(r.id, r.job_id in own_dir) for r in run_rows]
            for name, table in self._owned_tables(conn):
                out.counts[name] = self._delete(conn, table, table.c.job_id, ids)
            out.counts["jobs"] = self._delete(conn, jobs, jobs.c.id, ids)
        return out

    @staticmethod
    def _delete(conn: sa.Connection, table: Any, column: Any, ids: list[str]) -> int:
        if not ids:
            return 0
        return int(conn.execute(table.delete().where(column.in_(ids))).rowcount or 0)

    @staticmethod
    def _owned_tables(conn: sa.Connection) -> list[tuple[str, Any]]:
        """The tables whose rows belong to a job, by `job_id`."""
        return [
            ("events", events),
            ("runs", runs),
            ("callbacks", callback_outbox),
            ("checkpoints", checkpoints),
            ("log_chunks", log_chunks),  # logs shipped by remote workers
        ]


def _no_pending() -> Any:
    return ~sa.exists(
        sa.select(callback_outbox.c.id).where(
            callback_outbox.c.job_id == jobs.c.id, callback_outbox.c.state == "pending"
        )
    )
