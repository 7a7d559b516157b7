"""Schedules (PRODUCT.md §14.2): stored specs, and the firing of their ticks.

A due schedule (`next_at <= now`, not paused) is fired by the leader scheduler's housekeeping
(`fire_schedules`): the pure `scheduling.periodic.due` picks the tick, the overlap policy looks
at the schedule's previous job, and the job is submitted through the batch path with
`schedule` and `scheduled_for` set. The unique index `ux_jobs_schedule_tick` on those two
makes a second submission of the same tick fail, whoever tries it (two schedulers racing, a
leader that died between the submit and the advance of `next_at`): exactly one job per tick.
`next_at` is advanced by compare-and-set on its old value.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Protocol

import sqlalchemy as sa

from jobfleet.errors import Conflict, JobfleetError, NotFound
from jobfleet.lifecycle import JobState
from jobfleet.models import JobSpec
from jobfleet.scheduling.periodic import ScheduleSpec, Timing, due
from jobfleet.store.base import DUPLICATE
from jobfleet.store.control import ControlOps
from jobfleet.store.intake import IntakeOps
from jobfleet.store.schema import jobs, schedules
from jobfleet.store.views import iso

log = logging.getLogger("jobfleet.schedules")
_TERMINAL = [s.value for s in JobState if s.terminal]


class Schedules(Protocol):
    """What the API routes use."""

    def create_schedule(self, spec: ScheduleSpec, *, actor: str) -> dict[str, Any]: ...
    def schedule_views(self, visible: list[str] | None = None) -> list[dict[str, Any]]: ...
    def schedule_view(self, name: str) -> dict[str, Any]: ...
    def update_schedule(self, name: str, changes: dict[str, Any]) -> dict[str, Any]: ...
    def delete_schedule(self, name: str) -> None: ...
    def pause_schedule(self, name: str, paused: bool) -> dict[str, Any]: ...
    def trigger_schedule(self, name: str, *, actor: str) -> dict[str, Any]: ...


class ScheduleOps(IntakeOps, ControlOps):
    # -- the API's operations -----------------------------------------------------------------

    def create_schedule(self, spec: ScheduleSpec, *, actor: str) -> dict[str, Any]:
        now = time.time()
        config = {**spec.stored(), "anchor": now}
        next_at = None if spec.paused else _timing(config).next_after(now)
        try:
            with self.tx() as conn:
                self._check_queue(conn, spec.job.queue)
                conn.execute(
                    schedules.insert().values(
                        name=spec.name,
                        config=config,
                        paused=spec.paused,
                        next_at=next_at,
                        created_by=actor,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except DUPLICATE as exc:
            raise Conflict(f"schedule {spec.name!r} exists already: PATCH it instead") from exc
        return self.schedule_view(spec.name)

    def schedule_views(self, visible: list[str] | None = None) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schedules).order_by(schedules.c.name)).all()
            rows = [r for r in rows if visible is None or _queue(r.config) in visible]
            return [self._view(conn, r._mapping) for r in rows]

    def schedule_view(self, name: str) -> dict[str, Any]:
        with self.read() as conn:
            return self._view(conn, self._schedule_row(conn, name))

    def schedule_queue(self, name: str) -> str:
        with self.read() as conn:
            return _queue(self._schedule_row(conn, name)["config"])

    def update_schedule(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """PATCH: the changed fields over the stored ones, validated whole (422 naming the
        field); the next tick is computed again."""
        with self.read() as conn:
            row = self._schedule_row(conn, name)
        config = dict(row["config"])
        merged = {k: v for k, v in config.items() if k != "anchor"}
        if "cron" in changes:
            merged.pop("every", None)
        if "every" in changes:
            merged.pop("cron", None)
        merged.update({"paused": row["paused"], **changes, "name": name})
        spec = ScheduleSpec.model_validate({k: v for k, v in merged.items() if v is not None})
        now = time.time()
        new = {**spec.stored(), "anchor": now if "every" in changes else config["anchor"]}
        next_at = None if spec.paused else _timing(new).next_after(now)
        with self.tx() as conn:
            self._check_queue(conn, spec.job.queue)
            conn.execute(
                schedules.update()
                .where(schedules.c.name == name)
                .values(config=new, paused=spec.paused, next_at=next_at, updated_at=now)
            )
        return self.schedule_view(name)

    def delete_schedule(self, name: str) -> None:
        """Delete the schedule; the jobs it submitted stay."""
        with self.tx() as conn:
            if not conn.execute(schedules.delete().where(schedules.c.name == name)).rowcount:
                raise NotFound(f"no schedule {name!r}")

    def pause_schedule(self, name: str, paused: bool) -> dict[str, Any]:
        """Pause (no tick fires) or resume (the next tick after now; none missed is fired)."""
        now = time.time()
        with self.tx() as conn:
            row = self._schedule_row(conn, name)
            next_at = None if paused else _timing(row["config"]).next_after(now)
            conn.execute(
                schedules.update()
                .where(schedules.c.name == name)
                .values(paused=paused, next_at=next_at, updated_at=now)
            )
        return self.schedule_view(name)

    def trigger_schedule(self, name: str, *, actor: str) -> dict[str, Any]:
        """Submit the schedule's job now (whatever its overlap policy), with
        `scheduled_for` = now."""
        with self.read() as conn:
            row = self._schedule_row(conn, name)
        job = self._fire(row, time.time(), actor=actor)
        assert job is not None
        return job

    # -- the leader scheduler's housekeeping ----------------------------------------------------

    def next_schedule_tick(self) -> float | None:
        with self.read() as conn:
            t = conn.execute(
                sa.select(sa.func.min(schedules.c.next_at)).where(schedules.c.paused == sa.false())
            ).scalar()
        return None if t is None else float(t)

    def fire_schedules(self, now: float | None = None) -> int:
        """Fire every due schedule's tick (at most one job each); returns the jobs submitted.

        The ticks' jobs go in one batch submission and the schedules advance in one
        transaction; if a tick has its job already (a racing scheduler), the batch is refused
        whole by the unique key and the jobs go one by one instead."""
        now = time.time() if now is None else now
        with self.read() as conn:
            rows = conn.execute(
                sa.select(schedules).where(
                    schedules.c.paused == sa.false(), schedules.c.next_at <= now
                )
            ).all()
        if not rows:
            return 0
        firing: list[tuple[Any, float]] = []
        advance: list[dict[str, Any]] = []
        for r in rows:
            row = r._mapping
            try:
                tick = self._plan_tick(row, now, advance)
                if tick is not None:
                    firing.append((row, tick))
            except Exception:  # one broken schedule must not stop the others
                log.exception("schedule %s: tick failed", row["name"])
        fired = self._fire_all(firing)
        if advance:
            with self.tx() as conn:  # compare-and-set: a racing scheduler advanced it already
                conn.execute(
                    schedules.update()
                    .where(
                        schedules.c.name == sa.bindparam("b_name"),
                        schedules.c.next_at == sa.bindparam("b_old"),
                    )
                    .values(
                        next_at=sa.bindparam("b_next"),
                        last_tick=sa.func.coalesce(sa.bindparam("b_tick"), schedules.c.last_tick),
                    ),
                    advance,
                )
        return fired

    def _plan_tick(self, row: Any, now: float, advance: list[dict[str, Any]]) -> float | None:
        """The tick to fire now (None: none, or its overlap policy says no); the schedule's
        advance is added to `advance`."""
        config = row["config"]
        tick, following = due(_timing(config), config.get("catchup", "one"), row["next_at"], now)
        advance.append(
            {"b_name": row["name"], "b_old": row["next_at"], "b_next": following, "b_tick": tick}
        )
        if tick is None:
            log.info("schedule %s: ticks missed while down are not caught up", row["name"])
            return None
        return tick if self._overlap_allows(row, tick) else None

    def _fire_all(self, firing: list[tuple[Any, float]]) -> int:
        if not firing:
            return 0
        specs = [JobSpec.model_validate(row["config"]["job"]) for row, _ in firing]
        columns = [
            {"schedule": row["name"], "scheduled_for": tick, "principal": row["created_by"]}
            for row, tick in firing
        ]
        try:
            return len(self.submit(specs, actor="scheduler", columns=columns))
        except (*DUPLICATE, JobfleetError):
            pass  # a tick has its job already, or one job is refused: each on its own
        fired = 0
        for row, tick in firing:
            try:
                fired += self._fire(row, tick, actor=row["created_by"]) is not None
            except JobfleetError as exc:  # its queue was deleted, ...: the others go on
                log.warning("schedule %s: tick %s not submitted: %s", row["name"], iso(tick), exc)
        return fired

    def _overlap_allows(self, row: Any, tick: float) -> bool:
        policy = row["config"].get("overlap", "allow")
        if policy == "allow":
            return True
        with self.read() as conn:
            previous = conn.execute(
                sa.select(jobs.c.id, jobs.c.state)
                .where(jobs.c.schedule == row["name"], jobs.c.scheduled_for < tick)
                .order_by(jobs.c.scheduled_for.desc())
                .limit(1)
            ).first()
        if previous is None or previous.state in _TERMINAL:
            return True
        if policy == "skip":
            log.warning(
                "schedule %s: tick %s skipped: the previous job %s is still %s (overlap: skip)",
                row["name"],
                iso(tick),
                previous.id,
                previous.state,
            )
            return False
        # cancel_previous; it may have ended meanwhile, or a racing scheduler cancelled it
        with contextlib.suppress(JobfleetError):
            self.cancel(
                previous.id,
                reason=f"schedule {row['name']}: the tick of {iso(tick)} replaces it",
                actor=f"schedule:{row['name']}",
            )
        return True

    def _fire(self, row: Any, tick: float, *, actor: str) -> dict[str, Any] | None:
        """Submit the tick's job; None if that tick has its job already (unique key)."""
        spec = JobSpec.model_validate(row["config"]["job"])
        columns = [{"schedule": row["name"], "scheduled_for": tick}]
        try:
            return self.submit_views([spec], actor=actor, columns=columns)[0]
        except DUPLICATE:
            log.info("schedule %s: tick %s was fired by another scheduler", row["name"], iso(tick))
            return None

    # -- reads ----------------------------------------------------------------------------------

    @staticmethod
    def _schedule_row(conn: sa.Connection, name: str) -> Any:
        row = conn.execute(sa.select(schedules).where(schedules.c.name == name)).first()
        if row is None:
            raise NotFound(f"no schedule {name!r}")
        return row._mapping

    def _check_queue(self, conn: sa.Connection, queue: str) -> None:
        self._check_queues(conn, [JobSpec(command=["-"], queue=queue)])

    @staticmethod
    def _view(conn: sa.Connection, row: Any) -> dict[str, Any]:
        config = row["config"]
        last = conn.execute(
            sa.select(jobs.c.id, jobs.c.state, jobs.c.scheduled_for)
            .where(jobs.c.schedule == row["name"])
            .order_by(jobs.c.scheduled_for.desc())
            .limit(1)
        ).first()
        return {
            "name": row["name"],
            "cron": config.get("cron"),
            "every": config.get("every"),
            "timezone": config.get("timezone", "UTC"),
            "job": config["job"],
            "overlap": config.get("overlap", "allow"),
            "catchup": config.get("catchup", "one"),
            "paused": bool(row["paused"]),
            "next_tick": iso(row["next_at"]),
            "last_tick": iso(row["last_tick"]),
            "last_job": None
            if last is None
            else {"id": last.id, "state": last.state, "scheduled_for": iso(last.scheduled_for)},
            "created_by": row["created_by"],
            "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]),
        }


def _timing(config: dict[str, Any]) -> Timing:
    return Timing.of(config, float(config.get("anchor", 0.0)))


def _queue(config: dict[str, Any]) -> str:
    return str(config["job"].get("queue", "default"))
