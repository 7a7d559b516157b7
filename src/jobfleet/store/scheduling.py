"""What the schedulers read and write: routing to shards, placement on workers, dependencies."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from jobfleet.failures import Condition, FailureInfo
from jobfleet.lifecycle import EventType, JobState, Op, transition
from jobfleet.scheduling.dependencies import combine, dependency_status
from jobfleet.store.base import CHUNK, REF_COLUMNS, JobRef, StoreBase, insert_many
from jobfleet.store.schema import counters, jobs, runs

# One statement for a whole lease batch on PostgreSQL: two arrays, not one parameter per row.
_LEASE_PG = sa.text(
    """
    UPDATE jobs SET state = :state, cancel_requested = :flag, attempt = jobs.attempt + 1,
           worker = v.worker, run_id = jobs.id || '-' || (jobs.attempt + 1),
           scheduling_reason = NULL, updated_at = :now
      FROM unnest(CAST(:ids AS text[]), CAST(:workers AS text[])) AS v(id, worker)
     WHERE jobs.id = v.id AND jobs.state = 'SCHEDULED' AND jobs.cancel_requested = false
    RETURNING jobs.id, jobs.state, jobs.cancel_requested, jobs.queue, jobs.job_set,
              jobs.attempt, jobs.run_id, jobs.worker, jobs.callback, jobs.cpu_milli,
              jobs.memory, jobs.gpu
    """
)


class SchedulingOps(StoreBase):
    def next_backoff(self) -> float | None:
        """When the earliest job waiting out a retry backoff becomes eligible."""
        with self.read() as conn:
            t = conn.execute(
                sa.select(sa.func.min(jobs.c.not_before)).where(
                    jobs.c.state == JobState.QUEUED.value, jobs.c.not_before.is_not(None)
                )
            ).scalar()
        return None if t is None else float(t)

    def lease(self, shard: str, placed: list[tuple[str, str]], *, lease_timeout: float) -> int:
        """Create a run and its lease for each (job, worker); SCHEDULED → LEASED.

        Set-based, for large batches. On PostgreSQL one `UPDATE ... FROM unnest(ids, workers)
        ... RETURNING` moves them all (no read first, one statement whatever the size); on
        SQLite one read and one UPDATE per worker. Then events and runs by COPY, and one draw
        of fencing tokens. A job no longer SCHEDULED (cancelled meanwhile) is skipped.
        """
        if not placed:
            return 0
        now = time.time()
        worker_of = dict(placed)
        with self.tx() as conn:
            if conn.dialect.name == "postgresql":
                moved = self._lease_pg(conn, worker_of, now)
            else:
                moved = self._lease_rows(
                    conn, self._lease_refs(conn, list(worker_of)), worker_of, now
                )
            self._append(
                conn,
                [
                    self._event(r, EventType.LEASED, now, {"shard": shard, "worker": r.worker})
                    for r in moved
                ],
                callbacks={r.id: r.callback for r in moved if r.callback},
            )
            fence = self._fencing(conn, len(moved))
            insert_many(
                conn,
                runs,
                [
                    {
                        "id": r.run_id,
                        "job_id": r.id,
                        "attempt": r.attempt,
                        "state": "LEASED",
                        "shard": shard,
                        "worker": r.worker,
                        "fencing": fence + i,
                        "lease_expires_at": now + lease_timeout,
                        "cpu_milli": r.extra["cpu_milli"],
                        "memory": r.extra["memory"],
                        "gpu": r.extra["gpu"],
                        "created_at": now,
                    }
                    for i, r in enumerate(moved)
                ],
            )
        return len(moved)

    def _lease_refs(self, conn: sa.Connection, ids: list[str]) -> list[JobRef]:
        refs: list[JobRef] = []
        for i in range(0, len(ids), CHUNK):
            refs += self._refs(
                conn,
                sa.and_(
                    jobs.c.id.in_(ids[i : i + CHUNK]),
                    jobs.c.state == JobState.SCHEDULED.value,
                    jobs.c.cancel_requested == sa.false(),
                ),
                jobs.c.cpu_milli,
                jobs.c.memory,
                jobs.c.gpu,
            )
        return refs

    @staticmethod
    def _lease_pg(conn: sa.Connection, worker_of: dict[str, str], now: float) -> list[JobRef]:
        """The lease UPDATE of a whole batch in one statement (the transition table says
        SCHEDULED → LEASED is legal; the WHERE makes the database refuse anything else)."""
        step = transition(JobState.SCHEDULED, Op.LEASE, cancel_requested=False)
        rows = conn.execute(
            _LEASE_PG,
            {
                "state": step.target.value,
                "flag": step.cancel_requested,
                "now": now,
                "ids": list(worker_of),
                "workers": list(worker_of.values()),
            },
        )
        target = step.target
        refs = []
        for r in rows:  # by position (the RETURNING list): a large lease's hot path
            job_id, _, cancel, queue, job_set, attempt, run_id, worker, callback = r[:9]
            extra = {"cpu_milli": r[9], "memory": r[10], "gpu": r[11]}
            refs.append(
                JobRef(
                    job_id, target, cancel, queue, job_set, attempt, run_id, worker, extra, callback
                )
            )
        return refs

    def _lease_rows(
        self, conn: sa.Connection, refs: list[JobRef], worker_of: dict[str, str], now: float
    ) -> list[JobRef]:
        """The guarded UPDATE of a lease batch (the table says SCHEDULED → LEASED is legal)."""
        step = transition(JobState.SCHEDULED, Op.LEASE, cancel_requested=False)
        sets: dict[str, Any] = {
            "state": step.target.value,
            "cancel_requested": step.cancel_requested,
            "attempt": jobs.c.attempt + 1,
            "run_id": jobs.c.id + "-" + sa.cast(jobs.c.attempt + 1, sa.String),
            "scheduling_reason": None,
            "updated_at": now,
        }
        guard = (
            jobs.c.state == JobState.SCHEDULED.value,
            jobs.c.cancel_requested == sa.false(),
        )
        got: set[str] = set()
        by_worker: dict[str, list[str]] = {}
        for r in refs:
            by_worker.setdefault(worker_of[r.id], []).append(r.id)
        for worker, wids in by_worker.items():
            stmt = (
                jobs.update()
                .where(jobs.c.id.in_(wids), *guard)
                .values(worker=worker, **sets)
                .returning(jobs.c.id)
            )
            got |= set(conn.execute(stmt).scalars())
        moved = []
        for r in refs:
            if r.id in got:
                r.state, r.attempt, r.worker = step.target, r.attempt + 1, worker_of[r.id]
                r.run_id = f"{r.id}-{r.attempt}"
                moved.append(r)
        return moved

    @staticmethod
    def _fencing(conn: sa.Connection, n: int) -> int:
        """Reserve `n` fencing tokens; returns the first. Tokens only ever grow."""
        if n == 0:
            return 0
        row = conn.execute(
            counters.update()
            .where(counters.c.name == "fencing")
            .values(value=counters.c.value + n)
            .returning(counters.c.value)
        ).first()
        if row is None:
            conn.execute(counters.insert().values(name="fencing", value=n))
            return 1
        return int(row[0]) - n + 1

    def set_reasons(self, reasons: dict[str, str]) -> None:
        """Record why jobs could not be placed (not a transition: no event)."""
        self._write_reasons(reasons, JobState.SCHEDULED)

    def resolve_dependencies(self, *, limit: int = 2000) -> int:
        """WAITING jobs whose dependencies are met are queued; impossible ones fail."""
        waiting = jobs.c.state == JobState.WAITING.value
        with self.read() as conn:  # usually none wait: skip the write lock
            if conn.execute(sa.select(jobs.c.seq).where(waiting).limit(1)).first() is None:
                return 0
        with self.tx() as conn:
            rows = conn.execute(
                sa.select(*REF_COLUMNS, jobs.c.spec)
                .where(waiting)
                .order_by(jobs.c.seq)
                .limit(limit)
            )
            refs = [JobRef.from_row(r) for r in rows]
            dep_ids = {d["job_id"] for r in refs for d in r.extra["spec"].get("depends_on", [])}
            states = dict(
                conn.execute(sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(dep_ids))).all()
            )
            ready, doomed = [], []
            for r in refs:
                verdict = combine(
                    dependency_status(d.get("after", "success"), JobState(states[d["job_id"]]))
                    if d["job_id"] in states
                    else "impossible"
                    for d in r.extra["spec"].get("depends_on", [])
                )
                if verdict == "met":
                    ready.append(r)
                elif verdict == "impossible":
                    doomed.append(r)
            self._move(conn, ready, Op.ENQUEUE, payload={"reason": "dependencies met"})
            failure = self._observe(
                FailureInfo(
                    condition=Condition.DEPENDENCY_FAILED,
                    message="a dependency ended in a state that can no longer satisfy it",
                )
            ).as_dict()
            self._move(
                conn, doomed, Op.FAIL, values={"failure": failure}, payload={"failure": failure}
            )
        return len(ready) + len(doomed)
