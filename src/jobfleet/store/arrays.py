"""Job arrays (PRODUCT.md §14.1): one submission of N jobs sharing a spec.

An array is a row of `arrays` (its size and `max_parallel`) and N rows of `jobs`, each with
`array_id` and `array_index`, stored through the batch submit path. The scheduler reads how
many more jobs of each array may start (`array_room`); the API reads an array's summary and
cancels it whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

import sqlalchemy as sa

from jobfleet.errors import InvalidInput, NotFound
from jobfleet.ids import new_id
from jobfleet.lifecycle import JobState
from jobfleet.models import JobSpec
from jobfleet.store.base import CHUNK
from jobfleet.store.control import _ACTIVE, _PRE_RUN, ControlOps
from jobfleet.store.intake import IntakeOps
from jobfleet.store.schema import arrays, jobs


class Arrays(Protocol):
    """What the API routes use of arrays."""

    def submit_array(
        self, spec: JobSpec, *, actor: str = "user", visible: list[str] | None = None
    ) -> dict[str, Any]: ...
    def array_summary(self, array_id: str) -> dict[str, Any]: ...
    def cancel_array(
        self, array_id: str, *, reason: str | None = None, actor: str = "user"
    ) -> dict[str, int]: ...


def element_specs(spec: JobSpec, array_id: str) -> list[JobSpec]:
    """The array's jobs: the spec without `array`, with the array's variables in `env`."""
    assert spec.array is not None
    size = spec.array.size
    common = {"JOBFLEET_ARRAY_ID": array_id, "JOBFLEET_ARRAY_SIZE": str(size)}
    return [
        spec.model_copy(
            update={
                "array": None,
                "env": {**spec.env, **common, "JOBFLEET_ARRAY_INDEX": str(i)},
            }
        )
        for i in range(size)
    ]


def array_errors(spec: JobSpec) -> list[dict[str, Any]]:
    """What an array may not be combined with (each names its field)."""
    errors = []
    if spec.client_id is not None:
        errors.append(
            {"loc": ["client_id"], "msg": "an array cannot have a client_id (one per job)"}
        )
    if spec.gang is not None:
        errors.append({"loc": ["gang"], "msg": "an array cannot be a gang"})
    return errors


class ArrayOps(IntakeOps, ControlOps):
    def submit_array(
        self, spec: JobSpec, *, actor: str = "user", visible: list[str] | None = None
    ) -> dict[str, Any]:
        """Store the array and its jobs (all or none): `{"array_id", "jobs": [job, ...]}`.
        `visible`: the queues the submitter may see (as for `submit_views`)."""
        assert spec.array is not None
        errors = array_errors(spec)
        if errors:
            raise InvalidInput(f"{errors[0]['loc'][0]}: {errors[0]['msg']}", errors)
        array_id = new_id()
        with self.tx() as conn:
            conn.execute(
                arrays.insert().values(
                    id=array_id,
                    queue=spec.queue,
                    job_set=spec.job_set,
                    size=spec.array.size,
                    max_parallel=spec.array.max_parallel,
                    created_at=time.time(),
                )
            )
        # The jobs go through the batch path, after their array row: the scheduler never sees
        # an element without its max_parallel. If they are refused, the row goes again.
        columns = [{"array_id": array_id, "array_index": i} for i in range(spec.array.size)]
        try:
            views = self.submit_views(
                element_specs(spec, array_id), actor=actor, visible=visible, columns=columns
            )
        except BaseException:
            with self.tx() as conn:
                conn.execute(arrays.delete().where(arrays.c.id == array_id))
            raise
        return {"array_id": array_id, "jobs": views}

    def array_summary(self, array_id: str) -> dict[str, Any]:
        """`{"array_id", "queue", "job_set", "size", "max_parallel", "counts": {state: n}}`."""
        with self.read() as conn:
            row = conn.execute(sa.select(arrays).where(arrays.c.id == array_id)).first()
            if row is None:
                raise NotFound(f"no array {array_id!r}")
            counts = conn.execute(
                sa.select(jobs.c.state, sa.func.count())
                .where(jobs.c.array_id == array_id)
                .group_by(jobs.c.state)
            ).all()
        return {
            "array_id": array_id,
            "queue": row.queue,
            "job_set": row.job_set,
            "size": row.size,
            "max_parallel": row.max_parallel,
            "counts": {state: int(n) for state, n in counts},
        }

    def array_queue(self, array_id: str) -> str:
        """The queue of an array (for permission checks); NotFound if there is none."""
        with self.read() as conn:
            queue = conn.execute(sa.select(arrays.c.queue).where(arrays.c.id == array_id)).scalar()
        if queue is None:
            raise NotFound(f"no array {array_id!r}")
        return str(queue)

    def cancel_array(
        self, array_id: str, *, reason: str | None = None, actor: str = "user"
    ) -> dict[str, int]:
        """Cancel every unfinished job of the array, like a job set."""
        self.array_queue(array_id)
        with self.tx() as conn:
            refs = self._refs(
                conn,
                sa.and_(
                    jobs.c.array_id == array_id,
                    jobs.c.state.in_(_PRE_RUN + _ACTIVE),
                    jobs.c.cancel_requested == sa.false(),
                ),
            )
            return self._cancel(conn, refs, reason=reason, actor=actor)

    def array_room(self, array_ids: Iterable[str]) -> dict[str, int]:
        """How many more jobs of each array may be LEASED or RUNNING now (arrays with a
        `max_parallel` only): the scheduler places no more than that."""
        wanted = sorted(set(array_ids))
        if not wanted:
            return {}
        room: dict[str, int] = {}
        with self.read() as conn:
            for i in range(0, len(wanted), CHUNK):
                part = wanted[i : i + CHUNK]
                limits = conn.execute(
                    sa.select(arrays.c.id, arrays.c.max_parallel).where(
                        arrays.c.id.in_(part), arrays.c.max_parallel.is_not(None)
                    )
                ).all()
                if not limits:
                    continue
                room.update({r.id: int(r.max_parallel) for r in limits})
                active = conn.execute(
                    sa.select(jobs.c.array_id, sa.func.count())
                    .where(
                        jobs.c.array_id.in_([r.id for r in limits]),
                        jobs.c.state.in_((JobState.LEASED.value, JobState.RUNNING.value)),
                    )
                    .group_by(jobs.c.array_id)
                ).all()
                for array_id, n in active:
                    room[array_id] -= int(n)
        return room
