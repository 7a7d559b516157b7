"""Reads for the dashboard: light job pages, per-queue summaries, workers with their load,
a job's events a page at a time, and cancelling every job a filter matches.

Each read is bounded so a page stays fast on a store with a million jobs: the jobs table reads
only the columns it shows, one index range at a time (cursor = the last `seq` seen); the job
page reads the newest `limit` events and transitions, never a job's whole history.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import NotFound
from jobfleet.lifecycle import EventType, JobState, Op
from jobfleet.store.control import ControlOps
from jobfleet.store.queries import JobFilter, QueryOps, decode_cursor, encode_cursor
from jobfleet.store.schema import events, jobs, queues, runs, workers
from jobfleet.store.views import event_view, history_view, iso, job_view

ROW_COLUMNS = (
    jobs.c.seq,
    jobs.c.id,
    jobs.c.queue,
    jobs.c.job_set,
    jobs.c.state,
    jobs.c.priority,
    jobs.c.attempt,
    jobs.c.cancel_requested,
    jobs.c.cpu_milli,
    jobs.c.memory,
    jobs.c.gpu,
    jobs.c.labels,
    jobs.c.worker,
    jobs.c.created_at,
    jobs.c.updated_at,
    jobs.c.finished_at,
    jobs.c.spec["command"].label("command"),
    jobs.c.array_id,
    jobs.c.array_index,
)
LIVE = [s.value for s in JobState if not s.terminal]
FINAL = [s.value for s in JobState if s.terminal]
ACTIVE = [JobState.LEASED.value, JobState.RUNNING.value]
RECENT_SCAN = 200_000  # events: the overview's failure and rate figures look no further back
_TRANSITIONS = [e.value for e in EventType if e is not EventType.REPRIORITIZED]
_FAILURE_TYPES = [EventType.FAILED.value, EventType.REQUEUED.value, EventType.PREEMPTED.value]
CANCEL_CHUNK = 1000


class FleetViewOps(QueryOps, ControlOps):
    # -- the jobs table -----------------------------------------------------------------

    def page_jobs(
        self, flt: JobFilter, *, limit: int = 50, cursor: str | None = None, oldest: bool = False
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of table rows (no spec, no runs), newest or oldest first."""
        order = jobs.c.seq.asc() if oldest else jobs.c.seq.desc()
        stmt = sa.select(*ROW_COLUMNS).order_by(order).limit(limit + 1)
        for cond in self._job_conditions(flt):
            stmt = stmt.where(cond)
        if cursor:
            seq = decode_cursor(cursor)
            stmt = stmt.where(jobs.c.seq > seq if oldest else jobs.c.seq < seq)
        with self.read() as conn:
            rows = conn.execute(stmt).all()
        page = [_row(r._mapping) for r in rows[:limit]]
        nxt = encode_cursor(page[-1]["seq"]) if len(rows) > limit else None
        return page, nxt

    def count_cancellable(self, flt: JobFilter) -> int:
        """How many jobs a bulk cancel of `flt` would touch (live, not already cancelling)."""
        stmt = sa.select(sa.func.count()).select_from(jobs).where(*self._cancellable(flt))
        with self.read() as conn:
            return int(conn.execute(stmt).scalar() or 0)

    def cancel_matching(
        self, flt: JobFilter, *, reason: str | None = None, actor: str = "user"
    ) -> dict[str, int]:
        """Cancel every live job `flt` matches, a chunk per transaction (writers keep going)."""
        total = {"cancelled": 0, "cancel_requested": 0}
        where = self._cancellable(flt)
        last = 0
        while True:
            with self.tx() as conn:
                chunk = conn.execute(
                    sa.select(jobs.c.seq)
                    .where(*where, jobs.c.seq > last)
                    .order_by(jobs.c.seq)
                    .limit(CANCEL_CHUNK)
                ).scalars()
                seqs = list(chunk)
                if not seqs:
                    return total
                last = seqs[-1]
                refs = self._refs(conn, jobs.c.seq.in_(seqs))
                refs = [r for r in refs if not r.state.terminal and not r.cancel_requested]
                got = self._cancel_many(conn, refs, reason=reason, actor=actor)
            for key in total:
                total[key] += got[key]

    def _cancel_many(
        self, conn: sa.Connection, refs: list[Any], *, reason: str | None, actor: str
    ) -> dict[str, int]:
        payload = {"requested_by": actor, "reason": reason or "cancelled by user"}
        before = [r for r in refs if not r.state.active]
        active = [r for r in refs if r.state.active]
        done = self._move(conn, before, Op.CANCEL, payload=payload)
        asked = self._move(conn, active, Op.CANCEL, payload=payload)
        return {"cancelled": len(done), "cancel_requested": len(asked)}

    def _cancellable(self, flt: JobFilter) -> list[Any]:
        conds = self._job_conditions(flt)
        states = [s for s in LIVE if not flt.states or s in flt.states]
        return [*conds, jobs.c.state.in_(states), jobs.c.cancel_requested == sa.false()]

    # -- the job page -------------------------------------------------------------------

    def job_events_page(
        self, job_id: str, *, limit: int = 50, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A job's events, newest first, `limit` at a time; the id to pass as `before` next."""
        stmt = (
            sa.select(events)
            .where(events.c.job_id == job_id)
            .order_by(events.c.id.desc())
            .limit(limit + 1)
        )
        if before is not None:
            stmt = stmt.where(events.c.id < before)
        with self.read() as conn:
            self._must_exist(conn, job_id)
            rows = conn.execute(stmt).all()
        page = [event_view(r._mapping) for r in rows[:limit]]
        return page, (page[-1]["id"] if len(rows) > limit else None)

    def recent_history(self, job_id: str, *, limit: int = 200) -> tuple[list[dict[str, Any]], int]:
        """The newest `limit` timeline entries (oldest first) and how many earlier ones exist."""
        stmt = (
            sa.select(events)
            .where(events.c.job_id == job_id, events.c.type.in_(_TRANSITIONS))
            .order_by(events.c.id.desc())
            .limit(limit + 1)
        )
        with self.read() as conn:
            rows = [r._mapping for r in conn.execute(stmt).all()]
            earlier = 0
            if len(rows) > limit:
                count = sa.select(sa.func.count()).where(
                    events.c.job_id == job_id,
                    events.c.type.in_(_TRANSITIONS),
                    events.c.id < rows[limit - 1]["id"],
                )
                earlier = int(conn.execute(count).scalar() or 0)
        return history_view(list(reversed(rows[:limit])), time.time()), earlier

    def job_page_view(self, job_id: str, *, runs_limit: int = 50) -> dict[str, Any]:
        """The job object with only its newest `runs_limit` runs (oldest first among them), and
        `runs_total`: a job retried thousands of times still opens fast."""
        with self.read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            newest = conn.execute(
                sa.select(runs)
                .where(runs.c.job_id == job_id)
                .order_by(runs.c.attempt.desc())
                .limit(runs_limit)
            ).all()
            total = len(newest)
            if total == runs_limit:
                count = sa.select(sa.func.count()).where(runs.c.job_id == job_id)
                total = int(conn.execute(count).scalar() or 0)
        view = job_view(row._mapping, [r._mapping for r in reversed(newest)])
        view["runs_total"] = total
        return view

    def run_progress(self, job_id: str, run_id: str | None) -> tuple[str | None, str]:
        """(the run — `run_id`, else the job's latest —, its state; the job's state if none)."""
        stmt = sa.select(runs.c.id, runs.c.state).where(runs.c.job_id == job_id)
        if run_id:
            stmt = stmt.where(runs.c.id == run_id)
        stmt = stmt.order_by(runs.c.attempt.desc()).limit(1)
        with self.read() as conn:
            found = conn.execute(stmt).first()
            if found is not None:
                return str(found.id), str(found.state)
            state = conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).scalar()
        if state is None:
            raise NotFound(f"no job {job_id!r}")
        return None, str(state)

    def jobs_brief(self, ids: list[str], visible: list[str] | None = None) -> dict[str, str]:
        """id → state for the jobs that exist (dependency links), of `visible` queues only if
        given: a job of another queue is left out, as one that does not exist."""
        if not ids:
            return {}
        stmt = sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(ids))
        if visible is not None:
            stmt = stmt.where(jobs.c.queue.in_(visible) if visible else sa.false())
        with self.read() as conn:
            return {r.id: r.state for r in conn.execute(stmt)}

    def queue_names(self) -> list[str]:
        with self.read() as conn:
            return list(conn.execute(sa.select(queues.c.name).order_by(queues.c.name)).scalars())

    # -- the overview -------------------------------------------------------------------

    def final_counts(self) -> dict[tuple[str, str], int]:
        """(queue, state) → jobs, for the finished states: the bulk of a long-lived store, one
        pass over the (queue, state, seq) index. Callers may cache it (it only grows)."""
        stmt = (
            sa.select(jobs.c.queue, jobs.c.state, sa.func.count())
            .where(jobs.c.state.in_(FINAL))
            .group_by(jobs.c.queue, jobs.c.state)
        )
        with self.read() as conn:
            return {(q, st): int(n) for q, st, n in conn.execute(stmt).all()}

    def queue_overview(
        self, *, final: dict[tuple[str, str], int] | None = None
    ) -> list[dict[str, Any]]:
        """Per queue: jobs by state (live states counted now; finished ones from `final`, else
        counted now too), resources of LEASED/RUNNING jobs, its weight and configured limits."""
        live = (
            sa.select(jobs.c.queue, jobs.c.state, sa.func.count())
            .where(jobs.c.state.in_(LIVE))
            .group_by(jobs.c.queue, jobs.c.state)
        )
        used = (
            sa.select(
                jobs.c.queue,
                sa.func.count(),
                sa.func.sum(jobs.c.cpu_milli),
                sa.func.sum(jobs.c.memory),
                sa.func.sum(jobs.c.gpu),
            )
            .where(jobs.c.state.in_(ACTIVE))
            .group_by(jobs.c.queue)
        )
        with self.read() as conn:
            known = {r.name: r for r in conn.execute(sa.select(queues)).all()}
            counts = {(q, st): int(n) for q, st, n in conn.execute(live).all()}
            running = {r[0]: r for r in conn.execute(used).all()}
        counts.update(self.final_counts() if final is None else final)
        out = {
            name: _queue(name, known.get(name), running.get(name))
            for name in sorted(set(known) | {q for q, _ in counts})
        }
        for (queue, state), n in counts.items():
            out[queue]["states"][state] = n
            out[queue]["total"] += n
        return list(out.values())

    def recent_failures(
        self,
        *,
        window: float = 3600.0,
        limit: int = 5000,
        scan: int = RECENT_SCAN,
        visible: list[str] | None = None,
    ) -> dict[str, Any]:
        """Failures (final or retried) in the last `window` seconds, counted by category (or
        by condition when the classifier named none). Looks at the newest `scan` events at
        most (an id range: bounded cost however long the history). `visible`: only events of
        these queues (None: all)."""
        since = time.time() - window
        with self.read() as conn:
            floor = self._recent_floor(conn, scan)
            payloads = (
                conn.execute(
                    sa.select(events.c.payload)
                    .where(
                        events.c.id > floor,
                        events.c.time >= since,
                        events.c.type.in_(_FAILURE_TYPES),
                        *_in_queues(visible),
                    )
                    .order_by(events.c.id.desc())
                    .limit(limit)
                )
                .scalars()
                .all()
            )
        by: Counter[str] = Counter()
        for p in payloads:
            failure = (p or {}).get("failure") or {}
            names = failure.get("categories") or [f"condition {failure.get('condition', '?')}"]
            by.update(str(n) for n in names)
        return {"window": window, "total": len(payloads), "by": by.most_common(12)}

    def event_rate(
        self, *, window: float = 60.0, scan: int = RECENT_SCAN, visible: list[str] | None = None
    ) -> float:
        """Events per second over the last `window` seconds, from the newest `scan` events at
        most (so at most scan/window per second is reported); of `visible` queues if given."""
        since = time.time() - window
        with self.read() as conn:
            floor = self._recent_floor(conn, scan)
            n = conn.execute(
                sa.select(sa.func.count()).where(
                    events.c.id > floor, events.c.time >= since, *_in_queues(visible)
                )
            ).scalar()
        return int(n or 0) / window

    @staticmethod
    def _recent_floor(conn: sa.Connection, scan: int) -> int:
        top = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
        return max(0, int(top or 0) - scan)

    # -- workers ------------------------------------------------------------------------

    def dashboard_workers(self, *, lease_timeout: float) -> list[dict[str, Any]]:
        """Every worker with its capacity, what its live runs hold, and whether it is alive."""
        load = (
            sa.select(
                runs.c.worker,
                sa.func.count(),
                sa.func.sum(runs.c.cpu_milli),
                sa.func.sum(runs.c.memory),
                sa.func.sum(runs.c.gpu),
            )
            .where(runs.c.state.in_(ACTIVE))
            .group_by(runs.c.worker)
        )
        with self.read() as conn:
            rows = conn.execute(sa.select(workers).order_by(workers.c.shard, workers.c.name))
            ws = [dict(r._mapping) for r in rows]
            used = {r[0]: r for r in conn.execute(load).all()}
        now = time.time()
        return [_worker(w, used.get(w["name"]), now, lease_timeout) for w in ws]


def _in_queues(visible: list[str] | None) -> list[Any]:
    """The condition "event of one of these queues" (none when `visible` is None: all)."""
    if visible is None:
        return []
    return [events.c.queue.in_(visible) if visible else sa.false()]


def _row(m: Any) -> dict[str, Any]:
    out = dict(m)
    out["cpu"] = m["cpu_milli"] / 1000
    out["created"] = iso(m["created_at"])
    command = m["command"]
    out["command"] = command if isinstance(command, str) else " ".join(command or [])
    return out


def _queue(name: str, q: Any, running: Any) -> dict[str, Any]:
    return {
        "name": name,
        "weight": q.weight if q is not None else None,
        "config": dict(q.config or {}) if q is not None else {},
        "states": {},
        "total": 0,
        "running": _usage(running),
    }


def _usage(row: Any) -> dict[str, Any]:
    if row is None:
        return {"jobs": 0, "cpu": 0.0, "memory": 0, "gpu": 0}
    return {
        "jobs": int(row[1]),
        "cpu": int(row[2] or 0) / 1000,
        "memory": int(row[3] or 0),
        "gpu": int(row[4] or 0),
    }


def _worker(w: dict[str, Any], used: Any, now: float, lease_timeout: float) -> dict[str, Any]:
    usage = _usage(used)
    cap = {"cpu": w["cpu_milli"] / 1000, "memory": int(w["memory"]), "gpu": int(w["gpu"])}
    shares = [usage[k] / cap[k] for k in ("cpu", "memory", "gpu") if cap[k]]
    age = now - float(w["last_heartbeat"])
    state = str(w["state"])
    if state != "OFFLINE" and age > lease_timeout:
        state = "UNREACHABLE"  # as fleet.py's worker_views: silent past the lease timeout
    return {
        "name": w["name"],
        "shard": w["shard"],
        "state": state,
        "alive": state not in ("OFFLINE", "UNREACHABLE"),
        "draining": state == "DRAINING",
        "isolation": (dict(w.get("info") or {}).get("isolation") or {}).get("backend"),
        "labels": w["labels"],
        "capacity": cap,
        "allocated": usage,
        "utilisation": max(shares) if shares else 0.0,
        "heartbeat_age": age,
        "last_heartbeat": iso(float(w["last_heartbeat"])),
        "registered_at": iso(float(w["registered_at"])),
    }
