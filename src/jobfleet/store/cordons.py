"""Cordoned and drained workers (PRODUCT.md §14.4), as an operator asks for them.

`cordon`: the worker takes no new lease (its state is CORDONED, and only READY workers get
leases); its running jobs go on. `drain`: the same (state DRAINING), and once `evict_at` has
passed, the worker is told to evict what still runs there (an `evict` order): each run ends
EVICTED and its job is requeued elsewhere without counting against its retries, with the
operator's name in the `requeued` event. `uncordon`: READY again. The row in `worker_cordons`
outlives a restart of the worker (it registers CORDONED or DRAINING again).
"""

from __future__ import annotations

import time
from typing import Any, Literal, Protocol

import sqlalchemy as sa

from jobfleet.errors import NotFound
from jobfleet.lifecycle import JobState
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import jobs, worker_cordons, workers
from jobfleet.store.views import iso

CORDONED = "CORDONED"
DRAINING = "DRAINING"
_ACTIVE = (JobState.LEASED.value, JobState.RUNNING.value)


class Cordons(Protocol):
    """What the API routes use."""

    def cordon(self, worker: str, *, actor: str) -> dict[str, Any]: ...
    def drain(self, worker: str, *, timeout: float, actor: str) -> dict[str, Any]: ...
    def uncordon(self, worker: str, *, actor: str) -> dict[str, Any]: ...
    def cordons(self) -> dict[str, dict[str, Any]]: ...


def evict_orders(conn: sa.Connection, worker: str, now: float) -> dict[str, Literal["evict"]]:
    """The runs a drained worker must evict now (its drain timeout has passed)."""
    due = conn.execute(
        sa.select(worker_cordons.c.evict_at).where(
            worker_cordons.c.worker == worker, worker_cordons.c.evict_at <= now
        )
    ).first()
    if due is None:
        return {}
    rows = conn.execute(
        sa.select(jobs.c.run_id).where(jobs.c.worker == worker, jobs.c.state.in_(_ACTIVE))
    ).scalars()
    return {run_id: "evict" for run_id in rows if run_id}


def evicted_by(conn: sa.Connection, worker: str | None) -> dict[str, str]:
    """Who drained `worker`, for the `requeued` event of a job evicted from it."""
    if worker is None:
        return {}
    by = conn.execute(
        sa.select(worker_cordons.c.requested_by).where(worker_cordons.c.worker == worker)
    ).scalar()
    if by is None:
        return {}
    return {"requested_by": by, "reason": f"worker {worker} was drained by {by}"}


def cordon_state(conn: sa.Connection, worker: str) -> str | None:
    """CORDONED or DRAINING if an operator said so (a re-registration keeps it)."""
    state = conn.execute(
        sa.select(worker_cordons.c.state).where(worker_cordons.c.worker == worker)
    ).scalar()
    return None if state is None else str(state)


class CordonOps(StoreBase):
    def cordon(self, worker: str, *, actor: str) -> dict[str, Any]:
        return self._set_cordon(worker, CORDONED, None, actor)

    def drain(self, worker: str, *, timeout: float, actor: str) -> dict[str, Any]:
        return self._set_cordon(worker, DRAINING, time.time() + timeout, actor)

    def uncordon(self, worker: str, *, actor: str) -> dict[str, Any]:
        with self.tx() as conn:
            self._must_be_registered(conn, worker)
            conn.execute(worker_cordons.delete().where(worker_cordons.c.worker == worker))
            conn.execute(
                workers.update()
                .where(workers.c.name == worker, workers.c.state.in_((CORDONED, DRAINING)))
                .values(state="READY")
            )
        return {"name": worker, "state": "READY", "requested_by": actor}

    def cordons(self) -> dict[str, dict[str, Any]]:
        """Worker name -> {state, requested_by, since, evict_at} for every cordoned worker."""
        with self.read() as conn:
            rows = conn.execute(sa.select(worker_cordons)).all()
        return {r.worker: _cordon_view(r._mapping) for r in rows}

    def _set_cordon(
        self, worker: str, state: str, evict_at: float | None, actor: str
    ) -> dict[str, Any]:
        now = time.time()
        values = {"state": state, "evict_at": evict_at, "requested_by": actor, "created_at": now}
        with self.tx() as conn:
            self._must_be_registered(conn, worker)
            done = conn.execute(
                worker_cordons.update().where(worker_cordons.c.worker == worker).values(**values)
            )
            if not done.rowcount:
                conn.execute(worker_cordons.insert().values(worker=worker, **values))
            conn.execute(
                workers.update()
                .where(workers.c.name == worker, workers.c.state != "OFFLINE")
                .values(state=state)
            )
        return {"name": worker, **_cordon_view({"worker": worker, **values})}

    @staticmethod
    def _must_be_registered(conn: sa.Connection, worker: str) -> None:
        if conn.execute(sa.select(workers.c.name).where(workers.c.name == worker)).first() is None:
            raise NotFound(f"no worker {worker!r}")


def _cordon_view(m: Any) -> dict[str, Any]:
    return {
        "state": m["state"],
        "requested_by": m["requested_by"],
        "since": iso(m["created_at"]),
        "evict_at": iso(m["evict_at"]),
    }
