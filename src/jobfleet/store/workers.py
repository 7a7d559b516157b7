"""Workers, leases and run reports. Every report is checked against the lease's fencing token."""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import sqlalchemy as sa

from jobfleet.errors import Conflict, IllegalTransition
from jobfleet.failures import Condition, FailureInfo, RetryPolicy, decide
from jobfleet.ids import new_id
from jobfleet.lifecycle import JobState, Op, RequeueCause, RunState
from jobfleet.models import MAX_MEMORY
from jobfleet.protocol import Assignment, Capacity, Checkpoint, Finished, ReportResult, Started
from jobfleet.store.base import REF_COLUMNS, JobRef
from jobfleet.store.cordons import cordon_state, evict_orders, evicted_by
from jobfleet.store.failures import FailureOps
from jobfleet.store.schema import JSONType, jobs, queues, runs, workers
from jobfleet.store.views import iso

ACTIVE = (RunState.LEASED.value, RunState.RUNNING.value)
AVOID_AT_MOST = 16  # workers a job remembers to avoid (the most recent ones)
# What a failing run's job must carry for the retry decision and what it may change.
_RETRY_COLUMNS = (jobs.c.spec, jobs.c.counted_retries, jobs.c.memory, jobs.c.avoid_workers)
_CAUSE_BY_CONDITION = {
    Condition.PREEMPTED: RequeueCause.PREEMPTED,
    Condition.EVICTED: RequeueCause.EVICTED,
    Condition.LEASE_EXPIRED: RequeueCause.LEASE_EXPIRED,
}
_RUN_STATE_BY_CONDITION = {
    Condition.PREEMPTED: RunState.PREEMPTED,
    Condition.LEASE_EXPIRED: RunState.LOST,
}


class WorkerOps(FailureOps):
    # -- registration and heartbeats ----------------------------------------------------

    def register_worker(
        self,
        name: str,
        shard: str,
        capacity: Capacity,
        *,
        labels: dict[str, str] | None = None,
        info: dict[str, Any] | None = None,
        identity: str | None = None,
        alive_within: float = 30.0,
    ) -> str:
        """(Re)register `name`. Runs an earlier incarnation held are lost: it no longer has them.

        A worker of that name registered with another `identity` and heart-beating within
        `alive_within` seconds is alive: the name is its, and this registration is a Conflict.
        """
        now = time.time()
        incarnation = new_id()
        with self.tx() as conn:
            self._check_identity(conn, name, identity, now - alive_within)
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
                "identity": identity,
            }
            values["state"] = cordon_state(conn, name) or "READY"  # an operator's cordon holds
            done = conn.execute(workers.update().where(workers.c.name == name).values(**values))
            if done.rowcount == 0:
                conn.execute(workers.insert().values(name=name, registered_at=now, **values))
            held = conn.execute(
                sa.select(runs.c.id).where(runs.c.worker == name, runs.c.state.in_(ACTIVE))
            ).scalars()
            self._lose(conn, list(held), now, "the worker restarted and no longer holds this run")
        return incarnation

    def retire_worker(self, name: str, identity: str | None) -> int:
        """This worker is about to start again (same identity): its previous registration
        takes no new leases from now on, and the runs it held are lost (their jobs follow
        their retry policy). A registration of another identity is left alone. Returns the
        number of runs lost."""
        now = time.time()
        with self.tx() as conn:
            row = conn.execute(
                sa.select(workers.c.identity, workers.c.state).where(workers.c.name == name)
            ).first()
            if row is None or row.state == "OFFLINE":
                return 0
            if row.identity is not None and row.identity != identity:
                return 0
            conn.execute(workers.update().where(workers.c.name == name).values(state="OFFLINE"))
            held = list(
                conn.execute(
                    sa.select(runs.c.id).where(runs.c.worker == name, runs.c.state.in_(ACTIVE))
                ).scalars()
            )
            self._lose(conn, held, now, "the worker restarted and no longer holds this run")
        return len(held)

    @staticmethod
    def _check_identity(
        conn: sa.Connection, name: str, identity: str | None, fresh_after: float
    ) -> None:
        row = conn.execute(
            sa.select(workers.c.identity, workers.c.state, workers.c.last_heartbeat, workers.c.info)
            .where(workers.c.name == name)
            .with_for_update()
        ).first()
        if row is None or row.identity is None or row.identity == identity:
            return
        if row.state == "OFFLINE" or row.last_heartbeat < fresh_after:
            return  # gone: the name is free again
        host = (row.info or {}).get("hostname") or "an unknown host"
        raise Conflict(
            f"worker name {name!r} is taken by a live worker of another identity (on host "
            f"{host}, last heartbeat {iso(row.last_heartbeat)}): give this worker another "
            "--name (or stop that one)"
        )

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
                runs.c.memory,
                jobs.c.spec,
            )
            .join(jobs, jobs.c.id == runs.c.job_id)
            .where(runs.c.worker == worker, runs.c.state == RunState.LEASED.value)
            .order_by(runs.c.fencing)
        )
        skip = exclude or set()
        with self.read() as conn:
            rows = [r for r in conn.execute(stmt).all() if r.id not in skip]
            saved = self._latest_checkpoints(conn, [r.job_id for r in rows if r.attempt > 1])
        return [
            Assignment(
                r.id,
                r.job_id,
                r.attempt,
                r.fencing,
                _effective_spec(r.spec, r.memory),
                r.lease_expires_at,
                saved.get(r.job_id),
            )
            for r in rows
        ]

    def orders(self, worker: str) -> dict[str, Literal["cancel", "preempt", "evict"]]:
        """Runs on this worker to stop: their job has a cancel or a preemption in progress, or
        the worker was drained and its drain timeout has passed (store/cordons.py)."""
        stmt = sa.select(jobs.c.run_id, jobs.c.cancel_requested).where(
            jobs.c.worker == worker,
            jobs.c.state.in_(ACTIVE),
            sa.or_(jobs.c.cancel_requested == sa.true(), jobs.c.preempt_requested == sa.true()),
        )
        with self.read() as conn:
            out: dict[str, Literal["cancel", "preempt", "evict"]] = {}
            out.update(evict_orders(conn, worker, time.time()))
            out.update(
                {
                    r.run_id: "cancel" if r.cancel_requested else "preempt"
                    for r in conn.execute(stmt)
                    if r.run_id
                }
            )
            return out

    def cancel_orders(self, worker: str) -> list[str]:
        """Runs on this worker whose job has a cancel in progress."""
        return [r for r, kind in self.orders(worker).items() if kind == "cancel"]

    # -- reports ------------------------------------------------------------------------

    def report(
        self,
        worker: str,
        started: list[Started],
        finished: list[Finished],
        checkpoints: list[Checkpoint] | None = None,
    ) -> ReportResult:
        """Apply a worker's reports in one transaction. Stale or foreign leases are refused.

        Starts and plain endings (success, confirmed cancel) are applied in batches: a few
        statements per report, not per run. Failures go one by one through the retry policy.
        Checkpoints are recorded first, so a run's last checkpoint counts even when the same
        report ends the run; a checkpoint of a lease that is not valid is dropped.
        """
        result = ReportResult()
        with self.tx() as conn:
            ids = [s.run_id for s in started] + [f.run_id for f in finished]
            current = self._leases(conn, worker, ids + [c.run_id for c in checkpoints or []])
            if checkpoints:
                valid = {k: v for k, v in current.items() if _valid(v)}
                self._record_checkpoints(conn, checkpoints, valid)
            ok_started = [s for s in started if self._check(current, s.run_id, s.fencing, result)]
            for s in ok_started:
                current[s.run_id]["state"] = RunState.RUNNING.value
            ok: list[Finished] = []
            for f in finished:
                if self._check(current, f.run_id, f.fencing, result):
                    leased = current[f.run_id]["state"] == RunState.LEASED.value
                    if leased and f.outcome == "succeeded":
                        # It ran and ended between two reports: record the start it implies.
                        ok_started.append(Started(f.run_id, f.fencing, f.time))
                    current[f.run_id]["state"] = "ENDED"
                    ok.append(f)
            self._mark_started(conn, ok_started)
            self._finish_all(conn, worker, ok, result)
        return result

    def _finish_all(
        self, conn: sa.Connection, worker: str, finished: list[Finished], result: ReportResult
    ) -> None:
        if not finished:
            return
        refs = {
            r.run_id: r
            for r in self._refs(
                conn,
                sa.and_(
                    jobs.c.run_id.in_([f.run_id for f in finished]),
                    jobs.c.state.in_(ACTIVE),
                ),
                *_RETRY_COLUMNS,
            )
        }
        live = [f for f in finished if f.run_id in refs]
        succeeded = [f for f in live if f.outcome == "succeeded"]
        cancelled = [
            f for f in live if f.outcome != "succeeded" and refs[f.run_id].cancel_requested
        ]
        done = {f.run_id for f in succeeded + cancelled}
        self._end_runs(conn, succeeded, RunState.SUCCEEDED)
        self._move(
            conn,
            [refs[f.run_id] for f in succeeded],
            Op.SUCCEED,
            values={"failure": None},  # an earlier attempt's failure is not the job's now
            payload={"exit_code": 0},
        )
        self._end_runs(conn, cancelled, RunState.CANCELLED)
        self._move(
            conn,
            [refs[f.run_id] for f in cancelled],
            Op.CONFIRM_CANCEL,
            payload={"worker": worker, "reason": "the worker stopped the process"},
        )
        for f in live:
            if f.run_id in done:
                continue
            try:
                with conn.begin_nested():
                    self._fail_run(conn, refs[f.run_id], f)
            except IllegalTransition as exc:
                result.accepted.remove(f.run_id)
                result.refused[f.run_id] = f"refused: {exc.detail}"

    def _fail_run(self, conn: sa.Connection, ref: JobRef, f: Finished) -> None:
        failure = self._observe(
            f.failure or FailureInfo(condition=Condition.EXIT_NONZERO, exit_code=f.exit_code)
        )
        state = _RUN_STATE_BY_CONDITION.get(failure.condition, RunState.FAILED)
        failure = self._fail_or_requeue(conn, ref, failure, time.time())
        self._end_runs(conn, [f], state, failure)

    @staticmethod
    def _end_runs(
        conn: sa.Connection,
        finished: list[Finished],
        state: RunState,
        failure: FailureInfo | None = None,
    ) -> None:
        if not finished:
            return
        conn.execute(
            runs.update()
            .where(
                runs.c.id == sa.bindparam("b_id"),
                sa.or_(*(runs.c.state == st for st in ACTIVE)),  # no IN: executemany
            )
            .values(
                state=state.value,
                exit_code=sa.bindparam("b_code"),
                signal=sa.bindparam("b_signal"),
                failure=failure.as_dict() if failure else None,
                finished_at=sa.bindparam("b_time"),
                outputs=sa.bindparam("b_outputs", type_=JSONType),
            ),
            [
                {
                    "b_id": f.run_id,
                    "b_code": f.exit_code,
                    "b_signal": f.signal,
                    "b_time": f.time,
                    "b_outputs": f.outputs,
                }
                for f in finished
            ],
        )

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
                runs.c.attempt,
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
        conn.execute(
            runs.update()
            .where(runs.c.id == sa.bindparam("b_id"), runs.c.state == RunState.LEASED.value)
            .values(state=RunState.RUNNING.value, started_at=sa.bindparam("b_time")),
            [{"b_id": s.run_id, "b_time": s.time} for s in started],
        )
        refs = self._refs(
            conn,
            sa.and_(
                jobs.c.run_id.in_([s.run_id for s in started]),
                jobs.c.state == JobState.LEASED.value,
            ),
        )
        self._move(conn, refs, Op.START, payload=lambda r: {"worker": r.worker})

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
    ) -> FailureInfo:
        """Retry (one `requeued` event) or end the job (one terminal event), by its policy.
        Returns the failure as recorded (with `retryable` decided)."""
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
            changes = _retry_changes(ref, decision.memory_factor, decision.avoid_worker)
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
                    "preempt_requested": False,
                    "counted_retries": jobs.c.counted_retries + int(decision.counts),
                    **changes,
                },
                payload={
                    "cause": cause.value,
                    "failure": body,
                    "delay": decision.delay,
                    **changes,
                    **(evicted_by(conn, ref.worker) if cause is RequeueCause.EVICTED else {}),
                },
            )
        else:
            op = Op.PREEMPT if failure.condition is Condition.PREEMPTED else Op.FAIL
            values = {"failure": body, "preempt_requested": False}
            self._move_one(conn, ref, op, now=now, values=values, payload={"failure": body})
        return failure

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
        failure = self._observe(FailureInfo(condition=Condition.LEASE_EXPIRED, message=why))
        conn.execute(
            runs.update()
            .where(runs.c.id.in_(run_ids), runs.c.state.in_(ACTIVE))
            .values(state=RunState.LOST.value, failure=failure.as_dict(), finished_at=now)
        )
        refs = self._refs(
            conn,
            sa.and_(jobs.c.run_id.in_(run_ids), jobs.c.state.in_(ACTIVE)),
            *_RETRY_COLUMNS,
        )
        for ref in refs:
            if ref.cancel_requested:
                payload = {"reason": f"cancelled; {why}", "failure": failure.as_dict()}
                self._move_one(conn, ref, Op.CONFIRM_CANCEL, now=now, payload=payload)
                continue
            run_id = ref.run_id
            recorded = self._fail_or_requeue(conn, ref, failure, now)
            conn.execute(
                runs.update().where(runs.c.id == run_id).values(failure=recorded.as_dict())
            )


def _valid(lease: dict[str, Any]) -> bool:
    return lease["state"] in ACTIVE and lease["lease_expires_at"] >= time.time()


def _effective_spec(spec: dict[str, Any], memory: int) -> dict[str, Any]:
    """The spec a run executes: its memory is the run's (a retry may have raised it)."""
    resources = spec.get("resources") or {}
    if resources.get("memory") == memory:
        return spec
    return {**spec, "resources": {**resources, "memory": memory}}


def _retry_changes(ref: JobRef, memory_factor: float | None, avoid: bool) -> dict[str, Any]:
    """What a retry rule changes for the next run: more memory, workers to avoid."""
    changes: dict[str, Any] = {}
    if memory_factor:
        memory = int(ref.extra["memory"])
        changes["memory"] = min(MAX_MEMORY, math.ceil(memory * memory_factor))
    if avoid and ref.worker:
        before = [w for w in ref.extra.get("avoid_workers") or [] if w != ref.worker]
        changes["avoid_workers"] = [*before, ref.worker][-AVOID_AT_MOST:]
    return changes


__all__ = ["REF_COLUMNS", "WorkerOps"]
