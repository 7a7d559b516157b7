"""Submission: a batch of validated specs stored in one transaction, with client_id dedup."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import IllegalTransition, InvalidInput, NotFound
from jobfleet.ids import new_id
from jobfleet.lifecycle import EventType, JobState, Op, allowed_actions, transition
from jobfleet.models import JobSpec
from jobfleet.scheduling.dependencies import dependency_status
from jobfleet.store.base import CHUNK, StoreBase, insert_many
from jobfleet.store.cycle import check_stored_gangs
from jobfleet.store.schema import jobs, queues
from jobfleet.store.views import iso, job_view

_UNSET: dict[str, Any] = dict.fromkeys(
    ("shard", "worker", "run_id", "failure", "scheduling_reason", "not_before", "finished_at")
)


Columns = Sequence[Mapping[str, Any]] | None


class IntakeOps(StoreBase):
    def submit(
        self,
        specs: list[JobSpec],
        *,
        retry_of: str | None = None,
        actor: str = "user",
        columns: Columns = None,
    ) -> list[str]:
        """Store `specs` (all or none) and return their job ids, in order.

        A spec whose queue + client_id was seen before returns the earlier job's id.
        `columns` (one mapping per spec) sets more of each row: an array's id and index, a
        schedule's name and tick.
        """
        return self._submit(specs, retry_of=retry_of, actor=actor, columns=columns)[0]

    def submit_views(
        self,
        specs: list[JobSpec],
        *,
        retry_of: str | None = None,
        actor: str = "user",
        columns: Columns = None,
    ) -> list[dict[str, Any]]:
        """Like :meth:`submit`, returning the job objects (built from what was written)."""
        ids, rows = self._submit(specs, retry_of=retry_of, actor=actor, columns=columns)
        views = {r["id"]: job_view({**_UNSET, **r}) for r in rows}
        for job_id in ids:
            if job_id not in views:
                views[job_id] = self.get_job(job_id)  # type: ignore[attr-defined]
        return [views[i] for i in ids]

    def retry_as_new(self, job_id: str, *, actor: str = "user") -> dict[str, Any]:
        """Submit a terminal job's spec again as a new job with `retry_of` set."""
        with self.read() as conn:
            row = conn.execute(
                sa.select(jobs.c.state, jobs.c.spec, jobs.c.cancel_requested).where(
                    jobs.c.id == job_id
                )
            ).first()
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        state = JobState(row.state)
        if not state.terminal:
            actions = allowed_actions(state, cancel_requested=bool(row.cancel_requested))
            raise IllegalTransition(
                f"cannot retry a job in state {state}: only a finished job can be retried as new",
                state=state.value,
                actions=[a.name for a in actions if a.enabled],
            )
        spec = JobSpec.model_validate({k: v for k, v in row.spec.items() if k != "client_id"})
        return self.submit_views([spec], retry_of=job_id, actor=actor)[0]

    def _submit(
        self, specs: list[JobSpec], *, retry_of: str | None, actor: str, columns: Columns = None
    ) -> tuple[list[str], list[dict[str, Any]]]:
        kw: dict[str, Any] = {"retry_of": retry_of, "actor": actor, "columns": columns}
        try:
            return self._submit_once(specs, late_lock=True, **kw)
        except sa.exc.IntegrityError:
            # Another submission stored the same queue + client_id meanwhile: with the lock
            # taken first, the second try sees it and returns that job instead.
            return self._submit_once(specs, late_lock=False, **kw)

    def _submit_once(
        self,
        specs: list[JobSpec],
        *,
        retry_of: str | None,
        actor: str,
        late_lock: bool,
        columns: Columns = None,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        now = time.time()
        with self.tx(late_lock=late_lock) as conn:  # new rows only: the lock is for the events
            self._check_queues(conn, specs)
            check_stored_gangs(conn, specs)
            known = self._existing_client_ids(conn, specs)
            deps = self._dependency_states(conn, specs)
            ids: list[str] = []
            rows: list[dict[str, Any]] = []
            evs: list[dict[str, Any]] = []
            for n, spec in enumerate(specs):
                key = (spec.queue, spec.client_id)
                if spec.client_id is not None and key in known:
                    ids.append(known[key])
                    continue
                job_id = new_id()
                if spec.client_id is not None:
                    known[key] = job_id
                ids.append(job_id)
                waiting = any(
                    dependency_status(d.after, deps[d.job_id]) != "met" for d in spec.depends_on
                )
                step = transition(None, Op.WAIT if waiting else Op.ENQUEUE)
                row = self._row(job_id, spec, step.target, now, retry_of)
                rows.append({**row, "principal": actor, **(columns[n] if columns else {})})
                base = {
                    "job_id": job_id,
                    "run_id": None,
                    "queue": spec.queue,
                    "job_set": spec.job_set,
                    "state": step.target.value,
                    "attempt": 0,
                    "time": now,
                }
                submitted = {"requested_by": actor, "retry_of": retry_of} if retry_of else None
                evs.append({**base, "type": EventType.SUBMITTED.value, "payload": submitted})
                evs.append({**base, "type": step.event.value, "payload": None})
            insert_many(conn, jobs, rows)
            self._append(conn, evs, {r["id"]: r["callback"] for r in rows if r["callback"]})
        return ids, rows

    @staticmethod
    def _row(
        job_id: str, spec: JobSpec, state: JobState, now: float, retry_of: str | None
    ) -> dict[str, Any]:
        command = spec.command if isinstance(spec.command, str) else " ".join(spec.command)
        search = " ".join([job_id, spec.job_set, command, *spec.labels.values()]).lower()
        return {
            "id": job_id,
            "queue": spec.queue,
            "job_set": spec.job_set,
            "state": state.value,
            "priority": spec.priority,
            "neg_priority": -spec.priority,
            "priority_class": spec.priority_class,
            "gang_id": spec.gang.id if spec.gang else None,
            "gang_size": spec.gang.size if spec.gang else None,
            "attempt": 0,
            "counted_retries": 0,
            "cancel_requested": False,
            "cpu_milli": spec.resources.cpu_milli,
            "memory": spec.resources.memory,
            "gpu": spec.resources.gpu,
            "spec": spec.stored(),
            "labels": spec.labels,
            "search": search[:2000],
            "client_id": spec.client_id,
            "retry_of": retry_of,
            "callback": (spec.callback_events or "terminal") if spec.callback_url else None,
            "ttl": spec.ttl_after_finished,
            "not_before": spec.not_before,
            "scheduling_reason": (
                f"not before {iso(spec.not_before)} (not_before)"
                if spec.not_before is not None and spec.not_before > now
                else None
            ),
            "created_at": now,
            "updated_at": now,
        }

    _known_queues: set[str]
    _known_until: float

    def _check_queues(self, conn: sa.Connection, specs: list[JobSpec]) -> None:
        """Refuse unknown queues. Known names are remembered for a few seconds (a queue may be
        deleted, by this process or another one, only when it holds no live job)."""
        if not hasattr(self, "_known_queues") or time.monotonic() > self._known_until:
            self._known_queues = set()
            self._known_until = time.monotonic() + 5.0
        names = {s.queue for s in specs} - self._known_queues
        if not names:
            return
        have = set(conn.execute(sa.select(queues.c.name).where(queues.c.name.in_(names))).scalars())
        self._known_queues |= have
        errors = [
            {"loc": ["jobs", i, "queue"], "msg": f"queue {s.queue!r} does not exist"}
            for i, s in enumerate(specs)
            if s.queue not in self._known_queues
        ]
        if errors:
            raise InvalidInput(
                "unknown queue: create it first (jobfleet queue create NAME) or use 'default'",
                errors[:50],
            )

    @staticmethod
    def _existing_client_ids(
        conn: sa.Connection, specs: list[JobSpec]
    ) -> dict[tuple[str, str | None], str]:
        keys = {(s.queue, s.client_id) for s in specs if s.client_id is not None}
        if not keys:
            return {}
        found: dict[tuple[str, str | None], str] = {}
        client_ids = list({k[1] for k in keys})
        for i in range(0, len(client_ids), CHUNK):
            stmt = sa.select(jobs.c.queue, jobs.c.client_id, jobs.c.id).where(
                jobs.c.client_id.in_(client_ids[i : i + CHUNK])
            )
            for queue, client_id, job_id in conn.execute(stmt):
                if (queue, client_id) in keys:
                    found[(queue, client_id)] = job_id
        return found

    @staticmethod
    def _dependency_states(conn: sa.Connection, specs: list[JobSpec]) -> dict[str, JobState]:
        """The current state of every job the specs depend on; unknown ids are refused."""
        wanted = {d.job_id for s in specs for d in s.depends_on}
        if not wanted:
            return {}
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(list(wanted)))
        ).all()
        states = {r.id: JobState(r.state) for r in rows}
        errors = [
            {"loc": ["jobs", i, "depends_on", j, "job_id"], "msg": f"no job {d.job_id!r}"}
            for i, s in enumerate(specs)
            for j, d in enumerate(s.depends_on)
            if d.job_id not in states
        ]
        if errors:
            raise InvalidInput("depends_on names a job that does not exist", errors[:50])
        return states
