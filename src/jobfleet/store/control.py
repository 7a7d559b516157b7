"""User actions on jobs: cancel (one job or a job set), reprioritize."""

from __future__ import annotations

import time

import sqlalchemy as sa

from jobfleet.errors import IllegalTransition, NotFound
from jobfleet.lifecycle import JobState, Op, transition
from jobfleet.store.base import ORDER, JobRef, StoreBase
from jobfleet.store.schema import jobs

_PRE_RUN = [JobState.WAITING.value, JobState.QUEUED.value, JobState.SCHEDULED.value]
_ACTIVE = [JobState.LEASED.value, JobState.RUNNING.value]


class ControlOps(StoreBase):
    def cancel(self, job_id: str, *, reason: str | None = None, actor: str = "user") -> None:
        """Cancel now (before a run) or request it (a worker holds the run)."""
        with self.tx() as conn:
            ref = self._one(conn, job_id)
            self._cancel(conn, [ref], reason=reason, actor=actor)

    def cancel_job_set(
        self,
        queue: str,
        job_set: str,
        *,
        states: list[str] | None = None,
        reason: str | None = None,
        actor: str = "user",
    ) -> dict[str, int]:
        wanted = states or [*_PRE_RUN, *_ACTIVE]
        with self.tx() as conn:
            refs = self._refs(
                conn,
                sa.and_(
                    jobs.c.queue == queue,
                    jobs.c.job_set == job_set,
                    jobs.c.state.in_([s for s in wanted if s in _PRE_RUN + _ACTIVE]),
                    jobs.c.cancel_requested == sa.false(),
                ),
            )
            return self._cancel(conn, refs, reason=reason, actor=actor)

    def _cancel(
        self, conn: sa.Connection, refs: list[JobRef], *, reason: str | None, actor: str
    ) -> dict[str, int]:
        now = time.time()
        payload = {"requested_by": actor, "reason": reason or "cancelled by user"}
        before = [r for r in refs if not r.state.active]
        active = [r for r in refs if r.state.active]
        if len(refs) == 1:
            self._move_one(conn, refs[0], Op.CANCEL, now=now, payload=payload)
            done = len(before)
        else:
            done = len(self._move(conn, before, Op.CANCEL, now=now, payload=payload))
            active = self._move(conn, active, Op.CANCEL, now=now, payload=payload)
        return {"cancelled": done, "cancel_requested": len(active)}

    def reprioritize(self, job_id: str, priority: int, *, actor: str = "user") -> None:
        with self.tx() as conn:
            ref = self._one(conn, job_id)
            payload = {
                "priority": priority,
                "previous": ref.extra["priority"],
                "requested_by": actor,
            }
            self._move_one(
                conn,
                ref,
                Op.REPRIORITIZE,
                values={"priority": priority, "neg_priority": -priority},
                payload=payload,
            )

    def preempt(self, job_id: str) -> None:
        """Ask the worker to preempt the job's run (SIGTERM, grace, SIGKILL).

        The preemption itself is one event when the worker confirms it: `requeued` with cause
        `preempted` (the default policy retries it, not counting), or `preempted` if the
        job's policy ends it there.
        """
        with self.tx() as conn:
            ref = self._one(conn, job_id)
            transition(ref.state, Op.PREEMPT, cancel_requested=ref.cancel_requested)  # legal?
            if ref.extra["preempt_requested"]:
                raise IllegalTransition(
                    f"job {job_id} is already being preempted", state=ref.state.value, actions=[]
                )
            conn.info["kinds"].add(ORDER)  # no event yet, but the worker must hear of it
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state.in_(_ACTIVE))
                .values(preempt_requested=True)
            )

    def _one(self, conn: sa.Connection, job_id: str) -> JobRef:
        found = self._refs(conn, jobs.c.id == job_id, jobs.c.priority, jobs.c.preempt_requested)
        if not found:
            raise NotFound(f"no job {job_id!r}")
        return found[0]
