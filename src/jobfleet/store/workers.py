"""Workers, leases and run reports. Every report is checked against the lease's fencing token."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import IllegalTransition
from jobfleet.failures import Condition, FailureInfo, RetryPolicy, decide
from jobfleet.ids import new_id
from jobfleet.lifecycle import JobState, Op, RequeueCause, RunState
from jobfleet.protocol import Assignment, Capacity, Finished, ReportResult, Started
from jobfleet.store.base import REF_COLUMNS, JobRef, StoreBase
from jobfleet.store.schema import jobs, queues, runs, workers

ACTIVE = (RunState.LEASED.value, RunState.RUNNING.value)
_CAUSE_BY_CONDITION = {
    Condition.PREEMPTED: RequeueCause.PREEMPTED,
    Condition.EVICTED: RequeueCause.EVICTED,
    Condition.LEASE_EXPIRED: RequeueCause.LEASE_EXPIRED,
}
_RUN_STATE_BY_CONDITION = {
    Condition.PREEMPTED: RunState.PREEMPTED,
    Condition.LEASE_EXPIRED: RunState.LOST,
}


class WorkerOps(StoreBase):
    # -- registration and heartbeats ----------------------------------------------------

    def register_worker(
        self,
        name: str,
        shard: str,
        capacity: Capacity,
        *,
        labels: dict[str, str] | None = None,
        info: dict[str, Any] | None = None,
    ) -> str:
        """(Re)register `name`. Runs an earlier incarnation held are lost: it no longer has them."""
        now = time.time()
        incarnation = new_id()
        with self.tx() as conn:
            values = {
                "shard": shard,
                "state": "READY",
                "incarnation": incarnation,
                "cpu_milli": capacity.cpu_milli,
                "memory": capacity.memory,
                "gpu": capacity.gpu,
                "labels": labels or {},
                "info": info or {},
                "last_heartbeat": now,
            }
            done = conn.execute(workers.update().where(workers.c.name == name).values(**values))
            if done.rowcount == 0:
                conn.execute(workers.insert().values(name=name, registered_at=now, **values))
            held = conn.execute(
                sa.select(runs.c.id).where(runs.c.worker == name, runs.c.state.in_(ACTIVE))
            ).scalars()
            self._lose(conn, list(held), now, "the worker restarted and no longer holds this run")
        return incarnation

    def heartbeat(self, name: str, *, lease_timeout: float) -> None:
        """The worker is alive: renew its leases."""
        now = time.time()
        with self.tx() as conn:
            conn.execute(workers.update().where(workers.c.name == name).values(last_heartbeat=now))
            conn.execute(
                runs.update()
                .where(runs.c.worker == name, runs.c.state.in_(ACTIVE))
                .values(lease_expires_at=now + lease_timeout)
            )

    def set_worker_state(self, name: str, state: str) -> None:
        with self.tx() as conn:
            conn.execute(workers.update().where(workers.c.name == name).values(state=state))

    def list_workers(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute(sa.select(workers).order_by(workers.c.name)).all()
        return [dict(r._mapping) for r in rows]

    # -- what a worker is told ----------------------------------------------------------

    def assignments(self, worker: str, *, exclude: set[str] | None = None) -> list[Assignment]:
        """Leased runs the worker has not started yet."""
        stmt = (
            sa.select(
                runs.c.id,
                runs.c.job_id,
                runs.c.attempt,
                runs.c.fencing,
                runs.c.lease_expires_at,
                jobs.c.spec,
            )
            .join(jobs, jobs.c.id == runs.c.job_id)
            .where(runs.c.worker == worker, runs.c.state == RunState.LEASED.value)
            .order_by(runs.c.fencing)
        )
        with self.read() as conn:
            rows = conn.execute(stmt).all()
        skip = exclude or set()
        return [
            Assignment(r.id, r.job_id, r.attempt, r.fencing, r.spec, r.lease_expires_at)
            for r in rows
            if r.id not in skip
        ]

    def cancel_orders(self, worker: str) -> list[str]:
        """Runs on this worker whose job has a cancel in progress."""
        stmt = sa.select(jobs.c.run_id).where(
            jobs.c.worker == worker,
            jobs.c.state.in_(ACTIVE),
            jobs.c.cancel_requested == sa.true(),
        )
        with self.read() as conn:
            return [r for r in conn.execute(stmt).scalars() if r]

    # -- reports ------------------------------------------------------------------------

    def report(self, worker: str, started: list[Started], finished: list[Finished]) -> ReportResult:
        """Apply a worker's reports in one transaction. Stale or foreign leases are refused."""
        result = ReportResult()
        with self.tx() as conn:
            ids = [s.run_id for s in started] + [f.run_id for f in finished]
            current = self._leases(conn, worker, ids)
            ok_started = [s for s in started if self._check(current, s.run_id, s.fencing, result)]
            self._mark_started(conn, ok_started)
            for s in ok_started:
                current[s.run_id]["state"] = RunState.RUNNING.value
            for f in finished:
                if not self._check(current, f.run_id, f.fencing, result):
                    continue
                try:
                    with conn.begin_nested():
                        self._finish(conn, current[f.run_id], f)
                except IllegalTransition as exc:
                    result.accepted.remove(f.run_id)
                    result.refused[f.run_id] = f"refused: {exc.detail}"
                    continue
                current[f.run_id]["state"] = "ENDED"
        return result

    @staticmethod
    def _leases(conn: sa.Connection, worker: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        rows = conn.execute(
            sa.select(
                runs.c.id,
                runs.c.job_id,
                runs.c.fencing,
                runs.c.state,
                runs.c.worker,
                runs.c.lease_expires_at,
            ).where(runs.c.id.in_(ids))
        ).all()
        return {r.id: dict(r._mapping) for r in rows if r.worker == worker}

    @staticmethod
    def _check(
        current: dict[str, dict[str, Any]], run_id: str, fencing: int, result: ReportResult
    ) -> bool:
        lease = current.get(run_id)
        if lease is None:
            result.refused[run_id] = "no such run on this worker"
        elif lease["fencing"] != fencing:
            result.refused[run_id] = "superseded lease (fencing token does not match)"
        elif lease["state"] not in ACTIVE:
            result.refused[run_id] = f"the run already ended ({lease['state']})"
        elif lease["lease_expires_at"] < time.time():
            result.refused[run_id] = "the lease expired before this report"
        else:
            result.accepted.append(run_id)
            return True
        return False

    def _mark_started(self, conn: sa.Connection, started: list[Started]) -> None:
        if not started:
            return
        by_run = {s.run_id: s for s in started}
        for s in started:
            conn.execute(
                runs.update()
                .where(runs.c.id == s.run_id, runs.c.state == RunState.LEASED.value)
                .values(state=RunState.RUNNING.value, started_at=s.time)
            )
        refs = self._refs(
            conn, sa.and_(jobs.c.run_id.in_(list(by_run)), jobs.c.state == JobState.LEASED.value)
        )
        self._move(conn, refs, Op.START, payload=lambda r: {"worker": r.worker})

    def _finish(self, conn: sa.Connection, lease: dict[str, Any], f: Finished) -> None:
        refs = self._refs(conn, jobs.c.run_id == f.run_id, jobs.c.spec, jobs.c.counted_retries)
        if not refs or not refs[0].state.active:
            return
        ref = refs[0]
        if ref.state is JobState.LEASED and f.outcome == "succeeded":
            # It ran and finished between two reports: record the start it implies.
            self._mark_started(conn, [Started(f.run_id, f.fencing, f.time)])
            ref.state = JobState.RUNNING
        if f.outcome == "succeeded":
            self._end_run(conn, f, RunState.SUCCEEDED)
            self._move_one(conn, ref, Op.SUCCEED, payload={"exit_code": f.exit_code})
        elif ref.cancel_requested:
            self._end_run(conn, f, RunState.CANCELLED)
            payload = {"exit_code": f.exit_code, "worker": lease["worker"]}
            self._move_one(conn, ref, Op.CONFIRM_CANCEL, payload=payload)
        else:
            failure = f.failure or FailureInfo(condition=Condition.EXIT_NONZERO)
            state = _RUN_STATE_BY_CONDITION.get(failure.condition, RunState.FAILED)
            self._end_run(conn, f, state, failure)
            self._fail_or_requeue(conn, ref, failure, time.time())

    @staticmethod
    def _end_run(
        conn: sa.Connection, f: Finished, state: RunState, failure: FailureInfo | None = None
    ) -> None:
        conn.execute(
            runs.update()
            .where(runs.c.id == f.run_id, runs.c.state.in_(ACTIVE))
            .values(
                state=state.value,
                exit_code=f.exit_code,
                signal=f.signal,
                failure=failure.as_dict() if failure else None,
                finished_at=f.time,
            )
        )

    def _policy(self, conn: sa.Connection, ref: JobRef) -> RetryPolicy:
        own = ref.extra.get("spec", {}).get("retry")
        if own is not None:
            return RetryPolicy.model_validate(own)
        cfg = conn.execute(sa.select(queues.c.config).where(queues.c.name == ref.queue)).scalar()
        if cfg and cfg.get("retry") is not None:
            return RetryPolicy.model_validate(cfg["retry"])
        return self.retry_default

    def _fail_or_requeue(
        self, conn: sa.Connection, ref: JobRef, failure: FailureInfo, now: float
    ) -> None:
        decision = decide(
            self._policy(conn, ref),
            failure,
            counted_retries=int(ref.extra.get("counted_retries", 0)),
            total_retries=max(0, ref.attempt - 1),
        )
        failure = failure.model_copy(update={"retryable": decision.retry})
        body = failure.as_dict()
        if decision.retry:
            cause = _CAUSE_BY_CONDITION.get(failure.condition, RequeueCause.FAILED)
            self._move_one(
                conn,
                ref,
                Op.REQUEUE,
                now=now,
                values={
                    "failure": body,
                    "shard": None,
                    "worker": None,
                    "run_id": None,
                    "not_before": now + decision.delay if decision.delay else None,
                    "counted_retries": jobs.c.counted_retries + int(decision.counts),
                },
                payload={"cause": cause.value, "failure": body, "delay": decision.delay},
            )
        else:
            self._move_one(
                conn, ref, Op.FAIL, now=now, values={"failure": body}, payload={"failure": body}
            )

    # -- lost workers -------------------------------------------------------------------

    def expire_leases(self) -> int:
        """Runs whose lease ran out are LOST; their jobs follow the retry policy."""
        now = time.time()
        with self.tx() as conn:
            ids = list(
                conn.execute(
                    sa.select(runs.c.id).where(
                        runs.c.state.in_(ACTIVE), runs.c.lease_expires_at < now
                    )
                ).scalars()
            )
            self._lose(conn, ids, now, "the worker stopped renewing the lease")
        return len(ids)

    def _lose(self, conn: sa.Connection, run_ids: list[str], now: float, why: str) -> None:
        if not run_ids:
            return
        failure = FailureInfo(condition=Condition.LEASE_EXPIRED, message=why)
        conn.execute(
            runs.update()
            .where(runs.c.id.in_(run_ids), runs.c.state.in_(ACTIVE))
            .values(state=RunState.LOST.value, failure=failure.as_dict(), finished_at=now)
        )
        refs = self._refs(
            conn,
            sa.and_(jobs.c.run_id.in_(run_ids), jobs.c.state.in_(ACTIVE)),
            jobs.c.spec,
            jobs.c.counted_retries,
        )
        for ref in refs:
            if ref.cancel_requested:
                payload = {"reason": f"cancelled; {why}", "failure": failure.as_dict()}
                self._move_one(conn, ref, Op.CONFIRM_CANCEL, now=now, payload=payload)
            else:
                self._fail_or_requeue(conn, ref, failure, now)


__all__ = ["REF_COLUMNS", "WorkerOps"]
