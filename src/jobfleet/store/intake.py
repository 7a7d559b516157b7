"""Submission: a batch of validated specs stored in one transaction, with client_id dedup."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import IllegalTransition, InvalidInput, NotFound
from jobfleet.ids import new_ids
from jobfleet.lifecycle import EventType, JobState, Op, allowed_actions, transition
from jobfleet.models import JobSpec
from jobfleet.scheduling.dependencies import dependency_status
from jobfleet.store.base import CHUNK, DUPLICATE, StoreBase, insert_many
from jobfleet.store.cycle import check_stored_gangs
from jobfleet.store.group import GroupCommit
from jobfleet.store.schema import jobs, queues
from jobfleet.store.views import iso, job_view

_GROUP_LOCK = threading.Lock()
_WAIT = transition(None, Op.WAIT)
_ENQUEUE = transition(None, Op.ENQUEUE)
_SUBMITTED_EVENTS = sa.text(
    "INSERT INTO events (type, job_id, run_id, queue, job_set, state, attempt, time, payload)"
    " SELECT CASE WHEN e.k = 1 THEN :submitted ELSE u.second END, u.id, NULL, u.queue,"
    " u.job_set, u.state, 0, :now,"
    " CASE WHEN e.k = 1 THEN CAST(:payload AS jsonb) END"
    " FROM unnest(CAST(:ids AS text[]), CAST(:queues AS text[]), CAST(:sets AS text[]),"
    " CAST(:states AS text[]), CAST(:seconds AS text[]))"
    " WITH ORDINALITY AS u(id, queue, job_set, state, second, n)"
    " CROSS JOIN (VALUES (1), (2)) AS e(k)"
    " ORDER BY u.n, e.k"
)
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
        visible: list[str] | None = None,
        columns: Columns = None,
    ) -> list[dict[str, Any]]:
        """Like :meth:`submit`, returning the job objects (built from what was written).

        `visible`: the queues the submitter may see (None: all); `depends_on` naming a job of
        another queue is refused exactly as an id that does not exist. `columns`: extra
        columns of each job (an array's id and index, a schedule's tick)."""
        ids, rows = self._submit(
            specs, retry_of=retry_of, actor=actor, visible=visible, columns=columns
        )
        views = {r["id"]: job_view({**_UNSET, **r}) for r in rows}
        for job_id in ids:
            if job_id not in views:
                views[job_id] = self.get_job(job_id)  # type: ignore[attr-defined]
        return [views[i] for i in ids]

    def submit_grouped(
        self, spec: JobSpec, *, actor: str = "user", visible: list[str] | None = None
    ) -> dict[str, Any]:
        """Submit one spec in a transaction shared with the concurrent callers of this method
        (group commit, store/group.py); its job view once that transaction has committed.
        Callers are grouped by who they are (`actor`, and the queues they may see)."""
        group: GroupCommit | None = self.__dict__.get("_group")
        if group is None:
            with _GROUP_LOCK:
                group = self.__dict__.setdefault(
                    "_group",
                    GroupCommit(
                        lambda specs, who: self.submit_views(
                            specs, actor=who[0], visible=None if who[1] is None else list(who[1])
                        )
                    ),
                )
        return group.submit(spec, (actor, None if visible is None else tuple(sorted(visible))))

    def retry_as_new(
        self, job_id: str, *, actor: str = "user", visible: list[str] | None = None
    ) -> dict[str, Any]:
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
        return self.submit_views([spec], retry_of=job_id, actor=actor, visible=visible)[0]

    def _submit(
        self,
        specs: list[JobSpec],
        *,
        retry_of: str | None,
        actor: str,
        visible: list[str] | None = None,
        columns: Columns = None,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        kw: dict[str, Any] = {
            "retry_of": retry_of,
            "actor": actor,
            "visible": visible,
            "columns": columns,
        }
        try:
            return self._submit_once(specs, **kw)
        except DUPLICATE:
            # Another submission stored the same queue + client_id meanwhile (the unique index
            # made this one wait for it to commit): the second try sees it and returns that job.
            return self._submit_once(specs, **kw)

    def _submit_once(
        self,
        specs: list[JobSpec],
        *,
        retry_of: str | None,
        actor: str,
        visible: list[str] | None,
        columns: Columns = None,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        now = time.time()
        with self.tx() as conn:
            self._check_queues(conn, specs)
            self._lock_gangs(conn, specs)
            check_stored_gangs(conn, specs)
            known = self._existing_client_ids(conn, specs)
            deps = self._dependency_states(conn, specs, visible)
            ids: list[str] = []
            rows: list[dict[str, Any]] = []
            seconds: list[str] = []  # each job's second event: queued or waiting
            fresh = iter(new_ids(len(specs)))
            for n, spec in enumerate(specs):
                key = (spec.queue, spec.client_id)
                if spec.client_id is not None and key in known:
                    ids.append(known[key])
                    continue
                job_id = next(fresh)
                if spec.client_id is not None:
                    known[key] = job_id
                ids.append(job_id)
                waiting = spec.depends_on and any(
                    dependency_status(d.after, deps[d.job_id]) != "met" for d in spec.depends_on
                )
                step = _WAIT if waiting else _ENQUEUE
                row = self._row(job_id, spec, step.target, now, retry_of)
                rows.append({**row, "principal": actor, **(columns[n] if columns else {})})
                seconds.append(step.event.value)
            insert_many(conn, jobs, rows, copy_from=1)  # no per-row SQLAlchemy processing
            if rows:
                conn.info["xid"] = True  # it wrote: its events need no _claim_xid
            submitted = {"requested_by": actor, "retry_of": retry_of} if retry_of else None
            callbacks = {r["id"]: r["callback"] for r in rows if r["callback"]}
            if conn.dialect.name == "postgresql" and not callbacks and rows:
                self._append_submitted(conn, rows, seconds, now, submitted)
            else:
                evs: list[dict[str, Any]] = []
                for row, second in zip(rows, seconds, strict=True):
                    base = {
                        "job_id": row["id"],
                        "run_id": None,
                        "queue": row["queue"],
                        "job_set": row["job_set"],
                        "state": row["state"],
                        "attempt": 0,
                        "time": now,
                    }
                    evs.append({**base, "type": EventType.SUBMITTED.value, "payload": submitted})
                    evs.append({**base, "type": second, "payload": None})
                self._append(conn, evs, callbacks)
        return ids, rows

    @staticmethod
    def _append_submitted(
        conn: sa.Connection,
        rows: list[dict[str, Any]],
        seconds: list[str],
        now: float,
        submitted: dict[str, Any] | None,
    ) -> None:
        """PostgreSQL: the two events of each new job (submitted, then queued or waiting) in
        one INSERT from arrays of the jobs' columns, ids drawn in job order: no event row is
        built in Python. The caller's transaction already has its xid (it wrote the jobs)."""
        conn.info.setdefault("kinds", set()).update({EventType.SUBMITTED.value, *seconds})
        conn.execute(
            _SUBMITTED_EVENTS,
            {
                "ids": [r["id"] for r in rows],
                "queues": [r["queue"] for r in rows],
                "sets": [r["job_set"] for r in rows],
                "states": [r["state"] for r in rows],
                "seconds": seconds,
                "now": now,
                "submitted": EventType.SUBMITTED.value,
                "payload": None if submitted is None else json.dumps(submitted),
            },
        )

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
    def _lock_gangs(conn: sa.Connection, specs: list[JobSpec]) -> None:
        """PostgreSQL: one transaction lock per gang of the batch (in one order), so that two
        submissions of members of one gang are checked against each other's rows."""
        gangs = sorted({s.gang.id for s in specs if s.gang is not None})
        if gangs and conn.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    "SELECT pg_advisory_xact_lock(728132004, hashtext(g))"
                    " FROM unnest(CAST(:g AS text[])) g"
                ),
                {"g": gangs},
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
    def _dependency_states(
        conn: sa.Connection, specs: list[JobSpec], visible: list[str] | None = None
    ) -> dict[str, JobState]:
        """The current state of every job the specs depend on; unknown ids are refused, and so
        are ids of jobs in queues not `visible` (the same answer: no existence oracle)."""
        wanted = {d.job_id for s in specs for d in s.depends_on}
        if not wanted:
            return {}
        stmt = sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(sorted(wanted)))
        if visible is not None:
            stmt = stmt.where(jobs.c.queue.in_(visible) if visible else sa.false())
        if conn.dialect.name == "postgresql":
            # Held to the commit: a dependency that ends meanwhile waits for this submission,
            # then sees the new job waiting on it (writers take no common lock).
            stmt = stmt.order_by(jobs.c.id).with_for_update(read=True)
        rows = conn.execute(stmt).all()
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
