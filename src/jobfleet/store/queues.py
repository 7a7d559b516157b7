"""Queues: list, get, create, update, delete (PRODUCT.md §9 "queues CRUD")."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from jobfleet.config import QueueConfig
from jobfleet.errors import Conflict, NotFound
from jobfleet.lifecycle import JobState
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import jobs, queues
from jobfleet.store.views import iso

LIVE = [s.value for s in JobState if not s.terminal]


def queue_view(row: Any, counts: dict[str, int]) -> dict[str, Any]:
    config = dict(row.config or {})
    return {
        "name": row.name,
        "weight": row.weight,
        "max_running_jobs": config.get("max_running_jobs"),
        "max_resources": config.get("max_resources"),
        "retry": config.get("retry"),
        "jobs": counts,
        "created_at": iso(row.created_at),
    }


def stored_config(q: QueueConfig) -> dict[str, Any]:
    """What the `config` column keeps (everything but the name and the weight)."""
    return q.model_dump(mode="json", exclude={"name", "weight"}, exclude_none=True)


class QueueOps(StoreBase):
    def list_queues(self) -> list[dict[str, Any]]:
        """Every queue, with how many of its jobs are in each non-terminal state."""
        with self.read() as conn:
            rows = conn.execute(sa.select(queues).order_by(queues.c.name)).all()
            counts = self._live_counts(conn)
        return [queue_view(r, counts.get(r.name, {})) for r in rows]

    def get_queue(self, name: str) -> dict[str, Any]:
        with self.read() as conn:
            row = conn.execute(sa.select(queues).where(queues.c.name == name)).first()
            if row is None:
                raise NotFound(f"no queue {name!r}")
            counts = self._live_counts(conn, name)
        return queue_view(row, counts.get(name, {}))

    @staticmethod
    def _live_counts(conn: sa.Connection, name: str | None = None) -> dict[str, dict[str, int]]:
        stmt = (
            sa.select(jobs.c.queue, jobs.c.state, sa.func.count())
            .where(jobs.c.state.in_(LIVE))
            .group_by(jobs.c.queue, jobs.c.state)
        )
        if name is not None:
            stmt = stmt.where(jobs.c.queue == name)
        out: dict[str, dict[str, int]] = {}
        for queue, state, n in conn.execute(stmt):
            out.setdefault(queue, {})[state] = int(n)
        return out

    def create_queue(self, q: QueueConfig) -> dict[str, Any]:
        with self.tx() as conn:
            if conn.execute(sa.select(queues.c.name).where(queues.c.name == q.name)).first():
                raise Conflict(f"queue {q.name!r} exists already: use update to change it")
            conn.execute(
                queues.insert().values(
                    name=q.name, weight=q.weight, config=stored_config(q), created_at=time.time()
                )
            )
        return self.get_queue(q.name)

    def update_queue(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply `changes` (fields of QueueConfig; None removes a limit), validated whole."""
        with self.tx() as conn:
            row = conn.execute(sa.select(queues).where(queues.c.name == name)).first()
            if row is None:
                raise NotFound(f"no queue {name!r}")
            merged = {**(row.config or {}), "name": name, "weight": row.weight, **changes}
            q = QueueConfig.model_validate({k: v for k, v in merged.items() if v is not None})
            conn.execute(
                queues.update()
                .where(queues.c.name == name)
                .values(weight=q.weight, config=stored_config(q))
            )
        return self.get_queue(name)

    def delete_queue(self, name: str) -> None:
        """Delete a queue that holds no job that has not ended (409 otherwise)."""
        if name == "default":
            raise Conflict("the default queue cannot be deleted")
        with self.tx() as conn:
            if conn.execute(sa.select(queues.c.name).where(queues.c.name == name)).first() is None:
                raise NotFound(f"no queue {name!r}")
            live = conn.execute(
                sa.select(sa.func.count()).where(jobs.c.queue == name, jobs.c.state.in_(LIVE))
            ).scalar_one()
            if live:
                raise Conflict(
                    f"queue {name!r} has {live} jobs that have not ended: cancel them "
                    f"(jobfleet cancel) or wait for them, then delete the queue"
                )
            conn.execute(queues.delete().where(queues.c.name == name))
        self.forget_queue(name)

    def forget_queue(self, name: str) -> None:
        """Drop `name` from the submission path's memory of existing queues."""
        known: set[str] | None = getattr(self, "_known_queues", None)
        if known is not None:
            known.discard(name)
