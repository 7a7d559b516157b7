"""The fleet: shards and workers as the master router and the views see them, a worker's sync
(heartbeat, reconcile and poll in one round trip), drain states, and re-routing.

Routing's decisions come from `scheduling/routing.py` (pure); this module only reads the
snapshot it needs and writes its moves, each move one guarded UPDATE with its event.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import Conflict, NotFound
from jobfleet.lifecycle import JobState, Op
from jobfleet.protocol import Capacity, Sync
from jobfleet.scheduling.placement import Room
from jobfleet.scheduling.routing import Need, ShardState
from jobfleet.store.base import REF_COLUMNS, JobRef, in_state
from jobfleet.store.schema import jobs, runs, shards, workers
from jobfleet.store.views import iso
from jobfleet.store.workers import WorkerOps

ACTIVE = ("LEASED", "RUNNING")
WORKER_STATES = ("READY", "DRAINING", "OFFLINE")


def _selector(spec_selector: Any) -> dict[str, str]:
    return dict(spec_selector) if isinstance(spec_selector, dict) else {}


class FleetOps(WorkerOps):
    # -- the master router's snapshot and moves ----------------------------------------------

    def shard_states(self, *, fresh_after: float) -> list[ShardState]:
        """Every known shard with its live READY workers (total and free); `queued` is left
        empty (see `queued_demand`)."""
        with self.read() as conn:
            labels = {r.name: dict(r.labels) for r in conn.execute(sa.select(shards))}
            live = conn.execute(
                sa.select(workers).where(
                    workers.c.state == "READY", workers.c.last_heartbeat >= fresh_after
                )
            ).all()
            used = self._used(conn)
        for w in live:
            labels.setdefault(w.shard, {})
        totals: dict[str, list[Room]] = {name: [] for name in labels}
        free: dict[str, list[Room]] = {name: [] for name in labels}
        for w in live:
            u = used.get(w.name, (0, 0, 0, 0))
            merged = {**labels[w.shard], **dict(w.labels)}  # a selector sees both
            totals[w.shard].append(Room(w.name, w.cpu_milli, w.memory, w.gpu, merged))
            free[w.shard].append(
                Room(w.name, w.cpu_milli - u[0], w.memory - u[1], w.gpu - u[2], merged)
            )
        return [
            ShardState(name, lab, totals[name], free[name]) for name, lab in sorted(labels.items())
        ]

    def queued_demand(self) -> dict[str, tuple[int, int, int]]:
        """What each shard's queue holds in all (cpu_milli, memory, gpu): routing weighs it
        against the shard's free room. It reads the whole backlog, so only when routing."""
        with self.read() as conn:
            return {
                r.shard: (int(r.cpu), int(r.mem), int(r.gpu))
                for r in conn.execute(
                    sa.select(
                        jobs.c.shard,
                        sa.func.sum(jobs.c.cpu_milli).label("cpu"),
                        sa.func.sum(jobs.c.memory).label("mem"),
                        sa.func.sum(jobs.c.gpu).label("gpu"),
                    )
                    .where(in_state(JobState.SCHEDULED))
                    .group_by(jobs.c.shard)
                )
            }

    @staticmethod
    def _used(conn: sa.Connection) -> dict[str, tuple[int, int, int, int]]:
        rows = conn.execute(
            sa.select(
                runs.c.worker,
                sa.func.sum(runs.c.cpu_milli).label("cpu"),
                sa.func.sum(runs.c.memory).label("mem"),
                sa.func.sum(runs.c.gpu).label("gpu"),
                sa.func.count().label("n"),
            )
            .where(runs.c.state.in_(ACTIVE))
            .group_by(runs.c.worker)
        )
        return {r.worker: (int(r.cpu), int(r.mem), int(r.gpu), int(r.n)) for r in rows}

    def intake(
        self,
        *,
        limit: int = 2000,
        largest: Capacity | None = None,
        larger_than: Capacity | None = None,
    ) -> list[Need]:
        """Eligible QUEUED jobs (backoff over), higher priority first, then submit order.

        `largest`: only jobs that fit it (the most of each resource any live worker has), so
        jobs too large for every worker never hide the others; `larger_than`: only those.
        """
        now = time.time()
        where = [
            in_state(JobState.QUEUED),
            sa.or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now),
        ]
        if largest is not None:
            where += [
                jobs.c.cpu_milli <= largest.cpu_milli,
                jobs.c.memory <= largest.memory,
                jobs.c.gpu <= largest.gpu,
            ]
        if larger_than is not None:
            where.append(
                sa.or_(
                    jobs.c.cpu_milli > larger_than.cpu_milli,
                    jobs.c.memory > larger_than.memory,
                    jobs.c.gpu > larger_than.gpu,
                )
            )
        stmt = (
            sa.select(
                jobs.c.id,
                jobs.c.cpu_milli,
                jobs.c.memory,
                jobs.c.gpu,
                jobs.c.spec["selector"].label("selector"),
            )
            .where(*where)
            .order_by(jobs.c.priority.desc(), jobs.c.seq)
            .limit(limit)
        )
        with self.read() as conn:
            return [
                Need(r.id, r.cpu_milli, r.memory, r.gpu, _selector(r.selector))
                for r in conn.execute(stmt)
            ]

    def route_to(self, moves: dict[str, str]) -> int:
        """Move QUEUED jobs into the shards chosen for them: state SCHEDULED and the shard in
        one guarded UPDATE with its `scheduled` event, so each job is in exactly one place."""
        if not moves:
            return 0
        by_shard: dict[str, list[str]] = {}
        for job_id, shard in moves.items():
            by_shard.setdefault(shard, []).append(job_id)
        now = time.time()
        count = 0
        with self.tx() as conn:
            for shard, ids in by_shard.items():
                refs = self._refs(
                    conn,
                    sa.and_(jobs.c.id.in_(ids), jobs.c.state == JobState.QUEUED.value),
                    lock=False,  # a job no longer QUEUED is skipped by the move's guard
                )
                count += len(
                    self._move(
                        conn,
                        refs,
                        Op.SCHEDULE,
                        now=now,
                        values={"shard": shard, "not_before": None, "scheduling_reason": None},
                        payload={"shard": shard},
                    )
                )
        return count

    def set_intake_reasons(self, reasons: dict[str, str]) -> None:
        """Say why QUEUED jobs are not routed (not a transition: no event)."""
        self._write_reasons(reasons, JobState.QUEUED)

    def stuck(self, *, older_than: float, limit: int = 500) -> list[Need]:
        """SCHEDULED jobs that have waited in their shard's queue since before `older_than`."""
        stmt = (
            sa.select(
                jobs.c.id,
                jobs.c.cpu_milli,
                jobs.c.memory,
                jobs.c.gpu,
                jobs.c.shard,
                jobs.c.spec["selector"].label("selector"),
            )
            .where(in_state(JobState.SCHEDULED), jobs.c.updated_at < older_than)
            .order_by(jobs.c.seq)
            .limit(limit)
        )
        with self.read() as conn:
            return [
                Need(r.id, r.cpu_milli, r.memory, r.gpu, _selector(r.selector), r.shard)
                for r in conn.execute(stmt)
            ]

    def return_to_intake(self, job_ids: list[str], *, waited: float) -> int:
        """Shards give jobs they could not place back to the intake, for re-routing.

        SCHEDULED → QUEUED (`Op.RETURN`) with one `queued` event: cause `rerouted`, the shard
        it leaves and why. No run existed, so it is not a `requeued`.
        """
        if not job_ids:
            return 0
        now = time.time()
        with self.tx() as conn:
            refs = self._refs(
                conn,
                sa.and_(jobs.c.id.in_(job_ids), jobs.c.state == JobState.SCHEDULED.value),
                jobs.c.shard,
            )
            moved = self._move(
                conn,
                refs,
                Op.RETURN,
                now=now,
                values={"shard": None, "scheduling_reason": None},
                payload=lambda r: {
                    "cause": "rerouted",
                    "shard": r.extra["shard"],
                    "reason": f"shard {r.extra['shard']} could not place it for {waited:g}s",
                },
            )
        return len(moved)

    # -- a worker's sync ---------------------------------------------------------------------

    def sync(
        self,
        worker: str,
        *,
        incarnation: str | None = None,
        held: Iterable[str] = (),
        exclude: Iterable[str] = (),
        renew: bool = False,
        lease_timeout: float = 30.0,
    ) -> Sync:
        """A worker's heartbeat (`renew`), reconcile and poll in one call.

        Renewing extends only leases that have not expired yet: an expired lease is dead even
        before housekeeping marks its run LOST. With `renew` (every lease_timeout / 3) the
        worker's registration is checked and `held` (the runs it has processes for) that are
        no longer its live leases come back in `stop`; a plain poll costs two reads.
        """
        now = time.time()
        stop: list[str] = []
        if renew:
            self._check_worker(worker, incarnation, now=now, lease_timeout=lease_timeout)
            stop = self._not_ours(worker, set(held), now)
        skip = set(held) | set(exclude)
        fresh = [a for a in self.assignments(worker, exclude=skip) if a.lease_expires_at >= now]
        return Sync(fresh, self.orders(worker), stop)

    def _not_ours(self, worker: str, held: set[str], now: float) -> list[str]:
        if not held:
            return []
        with self.read() as conn:
            ours = set(
                conn.execute(
                    sa.select(runs.c.id).where(
                        runs.c.id.in_(held),
                        runs.c.worker == worker,
                        runs.c.state.in_(ACTIVE),
                        runs.c.lease_expires_at >= now,
                    )
                ).scalars()
            )
        return sorted(held - ours)

    def _check_worker(
        self, worker: str, incarnation: str | None, *, now: float, lease_timeout: float
    ) -> None:
        """The worker must be registered under this incarnation; renew its live leases."""
        with self.tx() as conn:
            row = conn.execute(
                sa.select(workers.c.incarnation, workers.c.state).where(workers.c.name == worker)
            ).first()
            if row is None or row.state == "OFFLINE":
                raise NotFound(f"worker {worker} is not registered: register it again")
            if incarnation and row.incarnation != incarnation:
                raise Conflict(
                    f"worker {worker} was registered again by another process: this one is "
                    "superseded (give each worker its own --name)"
                )
            conn.execute(
                workers.update().where(workers.c.name == worker).values(last_heartbeat=now)
            )
            conn.execute(
                runs.update()
                .where(
                    runs.c.worker == worker,
                    runs.c.state.in_(ACTIVE),
                    runs.c.lease_expires_at >= now,
                )
                .values(lease_expires_at=now + lease_timeout)
            )

    def set_worker_state(self, worker: str, state: str, *, incarnation: str | None = None) -> None:
        """READY, DRAINING (no new leases) or OFFLINE (deregistered: the runs it held are lost)."""
        if state not in WORKER_STATES:
            raise ValueError(f"unknown worker state {state!r}")
        now = time.time()
        with self.tx() as conn:
            where = [workers.c.name == worker]
            if incarnation:
                where.append(workers.c.incarnation == incarnation)
            done = conn.execute(workers.update().where(*where).values(state=state))
            if not done.rowcount:
                raise NotFound(f"worker {worker} is not registered (or was registered again)")
            if state == "OFFLINE":
                held = conn.execute(
                    sa.select(runs.c.id).where(runs.c.worker == worker, runs.c.state.in_(ACTIVE))
                ).scalars()
                self._lose(conn, list(held), now, "the worker went offline")

    def ensure_shards(self, configured: dict[str, dict[str, str]]) -> None:
        """Create or relabel the configured shards; a worker's shard is created on register."""
        now = time.time()
        with self.tx() as conn:
            for name, labels in configured.items():
                done = conn.execute(
                    shards.update().where(shards.c.name == name).values(labels=labels)
                )
                if not done.rowcount:
                    conn.execute(shards.insert().values(name=name, labels=labels, created_at=now))

    # -- views -------------------------------------------------------------------------------

    def worker_views(self, *, fresh_after: float) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute(sa.select(workers).order_by(workers.c.name)).all()
            used = self._used(conn)
        return [_worker_view(r._mapping, used.get(r.name), fresh_after) for r in rows]

    def shard_views(self, *, fresh_after: float) -> list[dict[str, Any]]:
        ws = [w for w in self.worker_views(fresh_after=fresh_after)]
        with self.read() as conn:
            labels = {r.name: dict(r.labels) for r in conn.execute(sa.select(shards))}
            counts = conn.execute(
                sa.select(jobs.c.shard, jobs.c.state, sa.func.count().label("n"))
                .where(jobs.c.state.in_(("SCHEDULED", *ACTIVE)), jobs.c.shard.is_not(None))
                .group_by(jobs.c.shard, jobs.c.state)
            ).all()
        for w in ws:
            labels.setdefault(w["shard"], {})
        by_state: dict[tuple[str, str], int] = {(r.shard, r.state): int(r.n) for r in counts}
        return [_shard_view(n, lab, ws, by_state) for n, lab in sorted(labels.items())]


def _resources(cpu_milli: int, memory: int, gpu: int) -> dict[str, Any]:
    return {"cpu": cpu_milli / 1000, "memory": memory, "gpu": gpu}


def _worker_view(m: Any, used: tuple[int, ...] | None, fresh_after: float) -> dict[str, Any]:
    u = used or (0, 0, 0, 0)
    state = m["state"]
    if state != "OFFLINE" and m["last_heartbeat"] < fresh_after:
        state = "UNREACHABLE"  # silent past the lease timeout: its leases expire
    return {
        "name": m["name"],
        "shard": m["shard"],
        "state": state,
        "capacity": _resources(m["cpu_milli"], m["memory"], m["gpu"]),
        "allocated": _resources(u[0], u[1], u[2]),
        "running": u[3],
        "labels": dict(m["labels"]),
        "last_heartbeat": iso(m["last_heartbeat"]),
        "registered_at": iso(m["registered_at"]),
        "info": dict(m["info"]),
    }


def _shard_view(
    name: str, labels: dict[str, str], ws: list[dict[str, Any]], by: dict[tuple[str, str], int]
) -> dict[str, Any]:
    mine = [w for w in ws if w["shard"] == name]
    live = [w for w in mine if w["state"] == "READY"]

    def total(key: str) -> dict[str, Any]:
        return {r: sum(w[key][r] for w in live) for r in ("cpu", "memory", "gpu")}

    return {
        "name": name,
        "labels": labels,
        "workers": len(live),
        "workers_total": len(mine),
        "capacity": total("capacity"),
        "allocated": total("allocated"),
        "scheduled": by.get((name, "SCHEDULED"), 0),
        "leased": by.get((name, "LEASED"), 0),
        "running": by.get((name, "RUNNING"), 0),
    }


__all__ = ["REF_COLUMNS", "FleetOps", "JobRef"]
