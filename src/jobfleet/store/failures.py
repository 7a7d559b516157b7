"""Checkpoints (recorded from worker reports, handed to the next attempt) and a job's errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import NotFound
from jobfleet.lifecycle import EventType
from jobfleet.protocol import CHECKPOINT_LIMIT, Checkpoint
from jobfleet.store.base import StoreBase
from jobfleet.store.queries import decode_cursor, encode_cursor
from jobfleet.store.schema import checkpoints, events, jobs, runs
from jobfleet.store.views import iso

log = logging.getLogger("jobfleet.store")
# Events that can carry a run's failure: each failure of each attempt is in exactly one of them.
_FAILURE_EVENTS = (
    EventType.REQUEUED.value,
    EventType.FAILED.value,
    EventType.PREEMPTED.value,
    EventType.CANCELLED.value,  # a cancel in progress whose worker was lost
)


class FailureOps(StoreBase):
    # -- checkpoints ----------------------------------------------------------------------------

    def _record_checkpoints(
        self, conn: sa.Connection, items: Sequence[Checkpoint], leases: dict[str, dict[str, Any]]
    ) -> int:
        """Keep each checkpoint whose lease is valid (`leases`: the report's checked leases),
        replacing the run's earlier one. Too large or not JSON: ignored, with a warning."""
        rows: dict[str, dict[str, Any]] = {}
        for c in items:
            lease = leases.get(c.run_id)
            if lease is None or lease["fencing"] != c.fencing:
                continue
            size = len(c.value.encode())
            if size > CHECKPOINT_LIMIT or not _is_json(c.value):
                log.warning("run %s: checkpoint ignored (not JSON, or %d bytes)", c.run_id, size)
                continue
            rows[c.run_id] = {
                "job_id": lease["job_id"],
                "run_id": c.run_id,
                "attempt": lease["attempt"],
                "value": c.value,
                "size": size,
                "created_at": c.time,
            }
        if rows:
            conn.execute(checkpoints.delete().where(checkpoints.c.run_id.in_(list(rows))))
            conn.execute(checkpoints.insert(), list(rows.values()))
        return len(rows)

    @staticmethod
    def _latest_checkpoints(conn: sa.Connection, job_ids: Sequence[str]) -> dict[str, str]:
        """job id -> the JSON text of its newest checkpoint, for the jobs that have one."""
        if not job_ids:
            return {}
        newest = (
            sa.select(sa.func.max(checkpoints.c.id))
            .where(checkpoints.c.job_id.in_(list(job_ids)))
            .group_by(checkpoints.c.job_id)
        )
        rows = conn.execute(
            sa.select(checkpoints.c.job_id, checkpoints.c.value).where(checkpoints.c.id.in_(newest))
        )
        return {r.job_id: r.value for r in rows}

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        """A job's checkpoints (the latest of each run), newest first."""
        with self.read() as conn:
            self._job_must_exist(conn, job_id)
            rows = conn.execute(
                sa.select(checkpoints)
                .where(checkpoints.c.job_id == job_id)
                .order_by(checkpoints.c.id.desc())
            ).all()
        return [
            {
                "run_id": r.run_id,
                "attempt": r.attempt,
                "size": r.size,
                "time": iso(r.created_at),
                "value": json.loads(r.value),
            }
            for r in rows
        ]

    # -- errors ---------------------------------------------------------------------------------

    def errors(
        self, job_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every failure of every attempt, newest first, as recorded when it was observed."""
        stmt = (
            sa.select(events, runs.c.worker)
            .select_from(events.outerjoin(runs, runs.c.id == events.c.run_id))
            .where(events.c.job_id == job_id, events.c.type.in_(_FAILURE_EVENTS))
            .order_by(events.c.id.desc())
        )
        after = decode_cursor(cursor) if cursor else None
        items: list[dict[str, Any]] = []
        with self.read() as conn:
            self._job_must_exist(conn, job_id)
            while len(items) <= limit:  # one more than asked: is there a next page?
                batch = stmt.where(events.c.id < after) if after is not None else stmt
                rows = conn.execute(batch.limit(limit + 1)).all()
                items += [
                    _error_item(r, r.payload["failure"])
                    for r in rows
                    if (r.payload or {}).get("failure")
                ]
                if len(rows) <= limit:
                    break
                after = rows[-1].id
        page = items[:limit]
        more = len(items) > limit
        return page, encode_cursor(page[-1]["event_id"]) if more else None

    @staticmethod
    def _job_must_exist(conn: sa.Connection, job_id: str) -> None:
        if conn.execute(sa.select(jobs.c.seq).where(jobs.c.id == job_id)).first() is None:
            raise NotFound(f"no job {job_id!r}")


def _error_item(row: Any, failure: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": row.id,
        "run_id": row.run_id,
        "attempt": row.attempt,
        "worker": row.worker,
        "time": iso(row.time),
        "event": row.type,
        "failure": failure,
    }


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
