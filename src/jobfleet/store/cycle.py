"""What one shard scheduler's cycle reads and writes beyond routing and leases: the lanes'
heads, gangs, the queues' shares and limits, running jobs for preemption, preemption orders,
broken gangs, and job-set reprioritization."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import InvalidInput
from jobfleet.lifecycle import JobState, Op
from jobfleet.models import JobSpec
from jobfleet.scheduling.cycle import Lane
from jobfleet.scheduling.fairshare import QueueState
from jobfleet.scheduling.placement import Demand
from jobfleet.scheduling.preemption import Running
from jobfleet.store.base import CHUNK, ORDER, StoreBase, in_state
from jobfleet.store.schema import jobs, queues
from jobfleet.units import parse_memory

ACTIVE = (JobState.LEASED.value, JobState.RUNNING.value)
PENDING = (JobState.WAITING.value, JobState.QUEUED.value, JobState.SCHEDULED.value)


@dataclass(frozen=True, slots=True)
class ClassInfo:
    priority: int = 0
    preemptible: bool = True


Classes = Mapping[str, ClassInfo]
DEFAULT_CLASS = ClassInfo()


def class_of(classes: Classes, name: str | None) -> ClassInfo:
    """A job's class: its named class, else `default` if configured, else priority 0."""
    if name is not None and name in classes:
        return classes[name]
    return classes.get("default", DEFAULT_CLASS)


def queue_state(name: str, weight: float, config: Mapping[str, Any]) -> QueueState:
    limits = config.get("max_resources") or {}
    cpu = limits.get("cpu")
    mem = limits.get("memory")
    return QueueState(
        name,
        weight=float(weight),
        max_running_jobs=config.get("max_running_jobs"),
        max_cpu_milli=None if cpu is None else round(float(cpu) * 1000),
        max_memory=None if mem is None else parse_memory(mem),
        max_gpu=limits.get("gpu"),
    )


# PostgreSQL: every lane's head in one statement, each an index range (LATERAL ... LIMIT).
_LANES_PG = sa.text(
    """
    SELECT * FROM (
      SELECT j.* FROM unnest(CAST(:queues AS text[])) AS q(name)
        CROSS JOIN unnest(CAST(:classes AS text[])) AS c(name)
        CROSS JOIN LATERAL (
          SELECT seq, neg_priority, id, cpu_milli, memory, gpu, queue, priority_class,
                 gang_id, gang_size, avoid_workers, spec->'selector' AS selector, array_id
            FROM jobs
           WHERE state = 'SCHEDULED' AND shard = :shard AND queue = q.name
             AND priority_class = c.name
             AND (array_id IS NULL OR NOT array_id = ANY(CAST(:held AS text[])))
           ORDER BY neg_priority, seq LIMIT :k) j
      UNION ALL
      SELECT j.* FROM unnest(CAST(:queues AS text[])) AS q(name)
        CROSS JOIN LATERAL (
          SELECT seq, neg_priority, id, cpu_milli, memory, gpu, queue, priority_class,
                 gang_id, gang_size, avoid_workers, spec->'selector' AS selector, array_id
            FROM jobs
           WHERE state = 'SCHEDULED' AND shard = :shard AND queue = q.name
             AND priority_class IS NULL
             AND (array_id IS NULL OR NOT array_id = ANY(CAST(:held AS text[])))
           ORDER BY neg_priority, seq LIMIT :k) j
    ) lanes
    ORDER BY queue, priority_class NULLS LAST, neg_priority, seq
    """
)


def _lane_selects(
    cols: tuple[Any, ...], base: tuple[Any, ...], names: list[str], known: list[str], k: int
) -> list[Any]:
    """SQLite: the lanes as UNION ALL statements of at most 100 lanes each."""
    parts = []
    for q in names:
        for cls in [*known, None]:
            which = (
                jobs.c.priority_class == cls if cls is not None else jobs.c.priority_class.is_(None)
            )
            parts.append(
                sa.select(*cols)
                .where(*base, jobs.c.queue == q, which)
                .order_by(jobs.c.neg_priority, jobs.c.seq)
                .limit(k)
                .subquery()
            )
    return [
        sa.union_all(*(sa.select(p) for p in parts[i : i + 100])) for i in range(0, len(parts), 100)
    ]


_NO_WORKERS: frozenset[str] = frozenset()


class _DemandMaker:
    """Rows of the lanes' heads as `Demand`s, the hot path of a cycle's read."""

    def __init__(self, classes: Classes) -> None:
        self.classes = classes
        self.levels: dict[str | None, int] = {}

    def level(self, name: str | None) -> int:
        got = self.levels.get(name)
        if got is None:
            got = self.levels[name] = class_of(self.classes, name).priority
        return got

    def __call__(self, r: Any) -> Demand:
        # A row of the lanes' columns (`cols` in `lanes`, the same order in _LANES_PG), read
        # as a tuple: access by name costs more, and a cycle reads PER_LANE rows of each lane.
        _, _, job_id, cpu, memory, gpu, queue, cls, gang, size, avoid, selector, array_id = r
        level = self.levels.get(cls)
        if level is None:
            level = self.level(cls)
        return Demand(
            job_id,
            cpu,
            memory,
            gpu,
            frozenset(avoid) if avoid else _NO_WORKERS,
            selector or {},
            queue,
            level,
            gang,
            size or 1,
            array_id,
        )

    def lanes(self, rows: Iterable[Any], per_lane: int) -> tuple[list[Demand], set[Lane]]:
        """Demands in placement order within each lane (queue x class priority), from rows
        that come lane by lane, each in (neg_priority, seq) order. Two stored lanes that are
        one lane to the planner (jobs of no class and of the `default` class, or two classes
        of one priority) are merged in that order. Also the lanes of which only the head was
        read (a stored lane gave `per_lane` rows)."""
        groups: dict[Lane, list[tuple[int, int, Demand]]] = {}
        stored: dict[tuple[Lane, str | None], int] = {}
        for r in rows:
            d = self(r)
            lane = (d.class_priority, d.queue)
            groups.setdefault(lane, []).append((r[1], r[0], d))  # (neg_priority, seq, demand)
            key = (lane, r[7])  # the stored lane: its priority_class
            stored[key] = stored.get(key, 0) + 1
        merged = Counter(lane for lane, _ in stored)
        out: list[Demand] = []
        for lane, group in groups.items():
            if merged[lane] > 1:
                group.sort(key=lambda t: (t[0], t[1]))
            out += [t[2] for t in group]
        return out, {lane for (lane, _), n in stored.items() if n >= per_lane}


class CycleOps(StoreBase):
    def queue_states(self) -> dict[str, QueueState]:
        """Every queue's weight and limits, with what its LEASED/RUNNING jobs hold."""
        with self.read() as conn:
            out = {
                r.name: queue_state(r.name, r.weight, r.config or {})
                for r in conn.execute(sa.select(queues.c.name, queues.c.weight, queues.c.config))
            }
            usage = conn.execute(
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
            for name, n, cpu, mem, gpu in usage:
                q = out.setdefault(name, QueueState(name))
                q.running, q.cpu_milli, q.memory, q.gpu = int(n), int(cpu), int(mem), int(gpu)
        return out

    def lanes(
        self,
        shard: str,
        names: list[str],
        classes: Classes,
        *,
        per_lane: int = 200,
        held: Iterable[str] = (),
    ) -> tuple[list[Demand], dict[str, list[Demand]], set[Lane]]:
        """The head of every lane (queue x priority class) of the shard's queue, in placement
        order; every SCHEDULED member in the shard of each gang met there; and the lanes with
        more jobs than were read.

        Each lane is one range of `ix_jobs_lane`. A job whose priority class was removed from
        the configuration is in no lane: it waits until the class is configured again.
        """
        cols = (
            jobs.c.seq,
            jobs.c.neg_priority,
            jobs.c.id,
            jobs.c.cpu_milli,
            jobs.c.memory,
            jobs.c.gpu,
            jobs.c.queue,
            jobs.c.priority_class,
            jobs.c.gang_id,
            jobs.c.gang_size,
            jobs.c.avoid_workers,
            jobs.c.spec["selector"].label("selector"),
            jobs.c.array_id,
        )
        held = sorted(held)  # job arrays at max_parallel: their jobs would only fill the heads
        base: tuple[Any, ...] = (in_state(JobState.SCHEDULED), jobs.c.shard == shard)
        if held:
            base += (sa.or_(jobs.c.array_id.is_(None), jobs.c.array_id.not_in(held)),)
        make = _DemandMaker(classes)
        with self.read() as conn:
            if conn.dialect.name == "postgresql":
                rows: Any = conn.execute(
                    _LANES_PG,
                    {
                        "shard": shard,
                        "queues": names,
                        "classes": list(classes),
                        "k": per_lane,
                        "held": held,
                    },
                )
                demands, unread = make.lanes(rows, per_lane)
            else:
                demands, unread = make.lanes(
                    (
                        r
                        for stmt in _lane_selects(cols, base, names, list(classes), per_lane)
                        for r in conn.execute(stmt)
                    ),
                    per_lane,
                )
            gang_ids = list({d.gang for d in demands if d.gang is not None})
            gangs: dict[str, list[Demand]] = {}
            for i in range(0, len(gang_ids), CHUNK):
                rows = conn.execute(
                    sa.select(*cols)
                    .where(*base, jobs.c.gang_id.in_(gang_ids[i : i + CHUNK]))
                    .order_by(jobs.c.seq)
                )
                for r in rows:
                    d = make(r)
                    gangs.setdefault(str(d.gang), []).append(d)
        return demands, gangs, unread

    def running(self, shard: str, classes: Classes) -> dict[str, list[Running]]:
        """The shard's LEASED/RUNNING jobs by worker, as preemption sees them."""
        stmt = sa.select(
            jobs.c.id,
            jobs.c.worker,
            jobs.c.cpu_milli,
            jobs.c.memory,
            jobs.c.gpu,
            jobs.c.priority_class,
            jobs.c.priority,
            jobs.c.preempt_requested,
            jobs.c.cancel_requested,
        ).where(jobs.c.state.in_(ACTIVE), jobs.c.shard == shard)
        out: dict[str, list[Running]] = {}
        with self.read() as conn:
            for r in conn.execute(stmt):
                cls = class_of(classes, r.priority_class)
                out.setdefault(r.worker, []).append(
                    Running(
                        r.id,
                        r.worker,
                        r.cpu_milli,
                        r.memory,
                        r.gpu,
                        class_priority=cls.priority,
                        priority=r.priority,
                        preemptible=cls.preemptible,
                        stopping=bool(r.preempt_requested or r.cancel_requested),
                    )
                )
        return out

    def preempting_workers(self, shard: str) -> set[str]:
        """Workers with a preemption in progress: they take no new job until it is done."""
        with self.read() as conn:
            return set(
                conn.execute(
                    sa.select(jobs.c.worker)
                    .where(
                        jobs.c.state.in_(ACTIVE),
                        jobs.c.shard == shard,
                        jobs.c.preempt_requested == sa.true(),
                    )
                    .distinct()
                ).scalars()
            )

    def request_preemptions(self, job_ids: list[str]) -> int:
        """Ask the workers to preempt these running jobs (as `preempt` by hand does)."""
        if not job_ids:
            return 0
        with self.tx() as conn:
            done = conn.execute(
                jobs.update()
                .where(
                    jobs.c.id.in_(job_ids),
                    jobs.c.state.in_(ACTIVE),
                    jobs.c.preempt_requested == sa.false(),
                )
                .values(preempt_requested=True)
            )
            n = int(done.rowcount or 0)
            if n:
                conn.info["kinds"].add(ORDER)
        return n

    def break_gangs(self) -> int:
        """A gang runs whole: if some members are back in a queue (preempted, lost, failed
        and retried) while others still run, stop the others, so all requeue together."""
        active = (
            sa.select(jobs.c.gang_id)
            .where(
                jobs.c.gang_id.is_not(None),
                jobs.c.state.in_(ACTIVE),
                jobs.c.preempt_requested == sa.false(),
                jobs.c.cancel_requested == sa.false(),
            )
            .distinct()
        )
        with self.read() as conn:
            running = list(conn.execute(active).scalars())
            if not running:
                return 0
            broken = list(
                conn.execute(
                    sa.select(jobs.c.gang_id)
                    .where(jobs.c.gang_id.in_(running), jobs.c.state.in_(PENDING))
                    .distinct()
                ).scalars()
            )
        if not broken:
            return 0
        with self.tx() as conn:
            stop = conn.execute(
                sa.select(jobs.c.id).where(
                    jobs.c.gang_id.in_(broken),
                    jobs.c.state.in_(ACTIVE),
                    jobs.c.preempt_requested == sa.false(),
                )
            ).scalars()
            ids = list(stop)
        return self.request_preemptions(ids)

    def reprioritize_job_set(
        self, queue: str, job_set: str, priority: int, *, actor: str = "user"
    ) -> int:
        """Change the priority of every job of the set that has not ended: one
        `reprioritized` event each. Takes effect in the next scheduling cycle."""
        now = time.time()
        with self.tx() as conn:
            refs = self._refs(
                conn,
                sa.and_(
                    jobs.c.queue == queue,
                    jobs.c.job_set == job_set,
                    jobs.c.state.in_([*PENDING, *ACTIVE]),
                ),
                jobs.c.priority,
            )
            moved = self._move(
                conn,
                refs,
                Op.REPRIORITIZE,
                now=now,
                values={"priority": priority, "neg_priority": -priority},
                payload=lambda r: {
                    "priority": priority,
                    "previous": r.extra["priority"],
                    "requested_by": actor,
                },
            )
        return len(moved)


def check_stored_gangs(conn: sa.Connection, specs: list[JobSpec]) -> None:
    """Refuse gang members that disagree with the members already stored (size, queue,
    priority class), or that would make the gang larger than its size."""
    wanted = {s.gang.id for s in specs if s.gang is not None}
    if not wanted:
        return
    rows = conn.execute(
        sa.select(
            jobs.c.gang_id, jobs.c.gang_size, jobs.c.queue, jobs.c.priority_class, sa.func.count()
        )
        .where(jobs.c.gang_id.in_(list(wanted)), jobs.c.state.in_([*PENDING, *ACTIVE]))
        .group_by(jobs.c.gang_id, jobs.c.gang_size, jobs.c.queue, jobs.c.priority_class)
    ).all()
    stored = {r[0]: r for r in rows}
    added: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        if spec.gang is None or spec.gang.id not in stored:
            continue
        gid, size, queue, cls, n = stored[spec.gang.id]
        added[gid] = added.get(gid, 0) + 1
        for field, mine, theirs in (
            (["gang", "size"], spec.gang.size, size),
            (["queue"], spec.queue, queue),
            (["priority_class"], spec.priority_class, cls),
        ):
            if mine != theirs:
                errors.append(
                    {
                        "loc": ["jobs", i, *field],
                        "msg": f"gang {gid!r}: {field[-1]} {mine!r} differs from {theirs!r} of "
                        "its members already submitted; all members of a gang must agree",
                    }
                )
        if n + added[gid] == size + 1:
            errors.append(
                {
                    "loc": ["jobs", i, "gang", "size"],
                    "msg": f"gang {gid!r} already has {n} of its {size} members",
                }
            )
    if errors:
        raise InvalidInput("gang members disagree with the gang", errors[:50])
