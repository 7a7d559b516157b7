"""The callback outbox: claims for deliverers, the record of each attempt, and reads for the API.

Claims: a deliverer marks due rows as its own (`claimed_by`, `claimed_until`) in a short
transaction that takes no event lock (it appends no event). On PostgreSQL the rows are picked
`FOR UPDATE SKIP LOCKED`, so two deliverers never wait on each other nor take the same row; on
SQLite there is one writer at a time. A claim expires: a deliverer that died mid-send leaves
the row to be claimed again later — so a callback is sent at least once, and the event id lets
the receiver drop a duplicate.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import NotFound
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import callback_outbox as outbox
from jobfleet.store.schema import events, jobs, queues
from jobfleet.store.views import event_view, iso

HISTORY = 50  # attempts kept per outbox row (the latest ones)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed outbox row, ready to send."""

    outbox_id: int
    event_id: int
    job_id: str
    queue: str
    url: str
    attempts: int  # made before this one
    body: bytes
    queue_secret: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one attempt and the row's state after it."""

    time: float
    status_code: int | None
    error: str | None
    state: str
    next_attempt_at: float | None


def _due(now: float) -> Any:
    return sa.and_(
        outbox.c.state == "pending",
        outbox.c.next_attempt_at <= now,
        sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
    )


def callback_summary(conn: sa.Connection, job_id: str) -> dict[str, Any]:
    """The `callbacks` block of a job view: deliveries by state and the last attempt."""
    rows = conn.execute(
        sa.select(outbox.c.state, outbox.c.attempts, outbox.c.history)
        .where(outbox.c.job_id == job_id)
        .order_by(outbox.c.id)
    ).all()
    counts = {"pending": 0, "delivered": 0, "failed": 0}
    last: dict[str, Any] | None = None
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
        if r.history:
            last = r.history[-1]
    return {**counts, "attempts": sum(r.attempts for r in rows), "last_attempt": last}


class OutboxOps(StoreBase):
    def callbacks_due(self, now: float | None = None) -> bool:
        """Is any row due? A read: deliverers ask this before taking a write transaction."""
        now = time.time() if now is None else now
        with self.read() as conn:
            found = conn.execute(sa.select(outbox.c.id).where(_due(now)).limit(1)).first()
        return found is not None

    def claim_callbacks(
        self, owner: str, *, limit: int, claim_for: float, now: float | None = None
    ) -> list[Delivery]:
        """Claim up to `limit` due rows for `owner` until `now + claim_for`."""
        now = time.time() if now is None else now
        if limit <= 0 or not self.callbacks_due(now):
            return []
        with self.tx() as conn:
            pick = sa.select(outbox.c.id).where(_due(now)).order_by(outbox.c.next_attempt_at)
            pick = pick.limit(limit)
            if self.backend == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            ids = list(conn.execute(pick).scalars())
            if not ids:
                return []
            conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(ids))
                .values(claimed_by=owner, claimed_until=now + claim_for)
            )
            rows = conn.execute(
                sa.select(outbox.c.id.label("outbox_id"), outbox.c.attempts, events, jobs.c.spec)
                .select_from(outbox)
                .join(events, events.c.id == outbox.c.event_id)
                .join(jobs, jobs.c.id == outbox.c.job_id)
                .where(outbox.c.id.in_(ids))
            ).all()
            secrets = self._queue_secrets(conn, {r.queue for r in rows})
        return [self._delivery(r._mapping, secrets) for r in rows]

    @staticmethod
    def _queue_secrets(conn: sa.Connection, names: set[str]) -> dict[str, str | None]:
        rows = conn.execute(
            sa.select(queues.c.name, queues.c.config).where(queues.c.name.in_(names))
        ).all()
        return {r.name: (r.config or {}).get("callback_secret") for r in rows}

    @staticmethod
    def _delivery(m: Any, secrets: dict[str, str | None]) -> Delivery:
        body = json.dumps(event_view(m), separators=(",", ":"), sort_keys=True).encode()
        return Delivery(
            outbox_id=m["outbox_id"],
            event_id=m["id"],
            job_id=m["job_id"],
            queue=m["queue"],
            url=m["spec"]["callback_url"],
            attempts=m["attempts"],
            body=body,
            queue_secret=secrets.get(m["queue"]),
        )

    def record_callback(self, owner: str, outbox_id: int, attempt: Attempt) -> bool:
        """Record an attempt made under `owner`'s claim; False if the claim was lost."""
        entry = {
            "time": iso(attempt.time),
            "status_code": attempt.status_code,
            "error": attempt.error,
            "next_retry_at": iso(attempt.next_attempt_at),
        }
        with self.tx() as conn:
            mine = sa.and_(outbox.c.id == outbox_id, outbox.c.claimed_by == owner)
            history = conn.execute(sa.select(outbox.c.history).where(mine)).scalar()
            if history is None:
                return False
            conn.execute(
                outbox.update()
                .where(mine)
                .values(
                    state=attempt.state,
                    attempts=outbox.c.attempts + 1,
                    next_attempt_at=attempt.next_attempt_at or attempt.time,
                    history=[*history, entry][-HISTORY:],
                    claimed_by=None,
                    claimed_until=None,
                    delivered_at=attempt.time if attempt.state == "delivered" else None,
                )
            )
        return True

    def callback_deliveries(self, job_id: str) -> list[dict[str, Any]]:
        """A job's deliveries (one per event to send) with their attempts, oldest first."""
        with self.read() as conn:
            if conn.execute(sa.select(jobs.c.seq).where(jobs.c.id == job_id)).first() is None:
                raise NotFound(f"no job {job_id!r}")
            rows = conn.execute(
                sa.select(outbox, events.c.type)
                .select_from(outbox)
                .join(events, events.c.id == outbox.c.event_id, isouter=True)
                .where(outbox.c.job_id == job_id)
                .order_by(outbox.c.id)
            ).all()
        return [
            {
                "event_id": r.event_id,
                "event_type": r.type,
                "state": r.state,
                "attempts": r.history,
                "next_retry_at": iso(r.next_attempt_at) if r.state == "pending" else None,
                "delivered_at": iso(r.delivered_at),
                "created_at": iso(r.created_at),
            }
            for r in rows
        ]

    def queue_secret(self, queue: str) -> str | None:
        """The queue's own `callback_secret`, if it has one."""
        with self.read() as conn:
            cfg = conn.execute(sa.select(queues.c.config).where(queues.c.name == queue)).scalar()
        return (cfg or {}).get("callback_secret")

    def next_callback_at(self, now: float | None = None) -> float | None:
        """When the earliest pending row is due, or its claim expires (None: none pending)."""
        now = time.time() if now is None else now
        claimed = outbox.c.claimed_until > now
        due = sa.case((claimed, outbox.c.claimed_until), else_=outbox.c.next_attempt_at)
        with self.read() as conn:
            stmt = sa.select(sa.func.min(due)).where(outbox.c.state == "pending")
            value = conn.execute(stmt).scalar()
        return None if value is None else float(value)

    def callback_backlog(self) -> int:
        """Deliveries not yet delivered nor given up."""
        with self.read() as conn:
            stmt = sa.select(sa.func.count()).where(outbox.c.state == "pending")
            return int(conn.execute(stmt).scalar() or 0)
