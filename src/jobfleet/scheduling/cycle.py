"""One scheduling cycle of a shard, as a pure function from a snapshot to decisions.

Order: higher priority classes first; within a class, the queue with the lowest weighted
dominant share gets the next placement (`fairshare.py`); within a queue, the order the
snapshot gives (higher `priority` first, then submit order). Queue limits hold jobs back; a
gang is placed whole or not at all; no more jobs of a job array than its `max_parallel` hold a
lease at once; a job placed takes room on the best-fitting worker
(`fit.py`). Every job looked at and not placed gets a reason a person understands.

The snapshot is a set of *lanes*: the pending jobs of one queue in one priority class, in
order. The store reads only the head of each lane, so a cycle's cost depends on how many jobs
it places, not on how many wait.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from jobfleet.protocol import Capacity
from jobfleet.scheduling.fairshare import (
    QueueState,
    count_limit,
    resource_limit,
    share_reason,
    weighted_share,
)
from jobfleet.scheduling.fit import Fitter
from jobfleet.scheduling.placement import Demand, Room, explain

Lane = tuple[int, str]  # (class priority, queue)
SKIP_LIMIT = 64  # jobs of one queue that may fail in a row before the queue stops for the cycle
REASON_WINDOW = 200  # jobs per lane, beyond those looked at, that get a reason
TURN_WINDOW = 20  # the same when the cycle stopped at max_placements


@dataclass(slots=True)
class CyclePlan:
    placed: list[tuple[str, str]] = field(default_factory=list)  # (job id, worker)
    reasons: dict[str, str] = field(default_factory=dict)  # job id -> why it is not placed
    unplaced: list[Demand] = field(default_factory=list)  # no room for them: may preempt
    free: dict[str, list[int]] = field(default_factory=dict)  # worker -> [cpu, mem, gpu] left


def lanes_of(demands: Iterable[Demand]) -> dict[Lane, list[Demand]]:
    """Group jobs (in placement order) into lanes, keeping their order."""
    lanes: dict[Lane, list[Demand]] = {}
    for d in demands:
        lanes.setdefault((d.class_priority, d.queue), []).append(d)
    return lanes


def total_capacity(totals: Iterable[Room]) -> Capacity:
    cpu = mem = gpu = 0
    for t in totals:
        cpu, mem, gpu = cpu + t.cpu_milli, mem + t.memory, gpu + t.gpu
    return Capacity(cpu, mem, gpu)


def plan_cycle(
    lanes: Mapping[Lane, Sequence[Demand]],
    queues: Mapping[str, QueueState],
    rooms: Sequence[Room],
    totals: Sequence[Room],
    shard: str,
    *,
    gangs: Mapping[str, Sequence[Demand]] | None = None,
    closed: Iterable[str] = (),
    reserved: Mapping[str, int] | None = None,
    max_placements: int = 10_000,
    unread: Iterable[Lane] = (),
    arrays: Mapping[str, int] | None = None,
) -> CyclePlan:
    """Decide this cycle's placements. `queues` is not changed (copies are used).

    `gangs` maps a gang id to every pending member in the shard (members may lie beyond the
    lanes' heads); `closed` names workers that take no job this cycle (a preemption on them
    is in progress: the room is kept for the job that asked for it); `reserved` maps a worker
    to the class priority of a preemptor waiting for its room: jobs of lower classes may not
    take that room once the victims have gone (they would only be preempted again).
    `unread` names lanes whose jobs were not all read (only the head): when such a lane runs
    out after placing jobs, the cycle ends there, since placing other lanes' jobs would pass
    over its unread ones (the next cycle reads on). `arrays` maps a job array with a
    `max_parallel` to how many more of its jobs may be leased now.
    """
    return _Cycle(
        lanes,
        queues,
        rooms,
        totals,
        shard,
        gangs or {},
        closed,
        max_placements,
        reserved or {},
        frozenset(unread),
        arrays or {},
    ).run()


class _Cycle:
    def __init__(
        self,
        lanes: Mapping[Lane, Sequence[Demand]],
        queues: Mapping[str, QueueState],
        rooms: Sequence[Room],
        totals: Sequence[Room],
        shard: str,
        gangs: Mapping[str, Sequence[Demand]],
        closed: Iterable[str],
        max_placements: int,
        reserved: Mapping[str, int],
        unread: frozenset[Lane] = frozenset(),
        arrays: Mapping[str, int] | None = None,
    ) -> None:
        self.lanes = lanes
        self.arrays = dict(arrays or {})  # array id -> jobs of it that may still be leased
        self.unread = unread
        self.cut = False  # a lane with unread jobs ran out: the cycle ends
        self.took: set[Lane] = set()  # lanes that placed a job this cycle
        self.queues = {name: _copy(q) for name, q in queues.items()}
        for _, name in lanes:
            self.queues.setdefault(name, QueueState(name))
        self.totals = totals
        self.shard = shard
        self.gangs = gangs
        self.cap = total_capacity(totals)
        self.fitter = Fitter(rooms, closed=closed, totals=totals, reserved=reserved)
        self.max_placements = max_placements
        self.plan = CyclePlan()
        self.cursor: dict[Lane, int] = dict.fromkeys(lanes, 0)
        self.done: set[str] = set()  # gang members handled with their gang
        self.blocked: dict[str, str] = {}  # queue -> limit reason
        self.skips: dict[str, int] = {}
        self.no_room: list[Demand] = []

    def run(self) -> CyclePlan:
        for tier in sorted({t for t, _ in self.lanes}, reverse=True):
            self._tier(tier)
            if self.cut:
                break
        self._explain()
        self.plan.free = self.fitter.free
        return self.plan

    def _tier(self, tier: int) -> None:
        heap = [(self._share(q), q) for t, q in self.lanes if t == tier and q not in self.blocked]
        heapq.heapify(heap)
        while heap and not self._full():
            _, q = heapq.heappop(heap)
            lane = (tier, q)
            d = self._next(lane)
            if d is None:
                # Out of read jobs. If the lane has unread ones and is moving, stop: the next
                # cycle reads on. If nothing of it could be placed, the others go on without it.
                if lane in self.unread and lane in self.took:
                    self.cut = True
                    return
                continue
            placed = len(self.plan.placed)
            if self._try(q, d):
                heapq.heappush(heap, (self._share(q), q))
            if len(self.plan.placed) > placed:
                self.took.add(lane)

    def _full(self) -> bool:
        return len(self.plan.placed) >= self.max_placements or self.fitter.empty

    def _share(self, q: str) -> float:
        return weighted_share(self.queues[q], self.cap)

    def _next(self, lane: Lane) -> Demand | None:
        jobs, i = self.lanes[lane], self.cursor[lane]
        while i < len(jobs) and jobs[i].job_id in self.done:
            i += 1
        self.cursor[lane] = i + 1
        return jobs[i] if i < len(jobs) else None

    def _try(self, q: str, d: Demand) -> bool:
        """Place `d` (or its gang); False when its queue is done for this cycle."""
        members = self._members(d)
        if members is None:
            return True
        full = self._array_full(d)
        if full:
            self._reason(members, full)
            return True  # the queue goes on: its other jobs are not held back
        queue = self.queues[q]
        limit = count_limit(queue, len(members))
        if limit and queue.running >= (queue.max_running_jobs or 0):
            self.blocked[q] = limit
            self._reason(members, limit)
            return False
        limit = limit or resource_limit(queue, members)
        if limit:
            self._reason(members, limit)
            return self._skip(q)
        taken = self._take_all(members)
        if taken is None:
            if d.gang is None:
                self.no_room.append(d)
            else:
                self._reason(members, self._gang_no_room(d))
            return self._skip(q)
        for m, worker in zip(members, taken, strict=True):
            queue.add(m)
            self.plan.placed.append((m.job_id, worker))
            if m.array in self.arrays:
                self.arrays[m.array] -= 1
        self.skips[q] = 0
        return True

    def _array_full(self, d: Demand) -> str | None:
        """Why `d` may not start now: its array already has max_parallel jobs leased."""
        if d.array is None or self.arrays.get(d.array, 1) > 0:
            return None
        return (
            f"array {d.array}: max_parallel reached (that many of its jobs are leased or "
            "running); the next starts when one ends"
        )

    def _members(self, d: Demand) -> list[Demand] | None:
        """`[d]`, or its whole gang; None if the gang is not all there (with reasons)."""
        if d.gang is None:
            return [d]
        members = list(self.gangs.get(d.gang) or [d])
        self.done.update(m.job_id for m in members)
        if len(members) < d.gang_size:
            self._reason(members, f"gang {d.gang} has {len(members)} of {d.gang_size} members")
            return None
        return members[: d.gang_size]

    def _take_all(self, members: list[Demand]) -> list[str] | None:
        taken: list[str] = []
        for m in members:
            worker = self.fitter.take(m)
            if worker is None:
                for undo, w in zip(members, taken, strict=False):
                    self.fitter.give_back(w, undo)
                return None
            taken.append(worker)
        return taken

    def _gang_no_room(self, d: Demand) -> str:
        return (
            f"gang {d.gang}: shard {self.shard} has no room for all {d.gang_size} members "
            "at once right now"
        )

    def _skip(self, q: str) -> bool:
        self.skips[q] = self.skips.get(q, 0) + 1
        return self.skips[q] < SKIP_LIMIT

    def _reason(self, ds: Iterable[Demand], why: str) -> None:
        for d in ds:
            self.plan.reasons[d.job_id] = why

    def _explain(self) -> None:
        """Reasons for the jobs that fitted nowhere and for those the cycle did not reach."""
        rooms = [Room(w, f[0], f[1], f[2]) for w, f in self.fitter.free.items()]
        waiting = {lane[1] for lane, i in self.cursor.items() if i < len(self.lanes[lane])}
        waiting |= {d.queue for d in self.no_room}
        lowest = min(
            (self.queues[q] for q in waiting if q not in self.blocked),
            key=lambda s: (weighted_share(s, self.cap), s.name),
            default=None,
        )
        why: dict[tuple[int, int, int], str] = {}
        for d in self.no_room:
            self.plan.unplaced.append(d)
            self.plan.reasons[d.job_id] = self._why(d, lowest, rooms, why)
        out_of_turns = len(self.plan.placed) >= self.max_placements or self.cut
        window = TURN_WINDOW if out_of_turns else REASON_WINDOW  # the next cycle follows at once
        turn = (
            "waiting its turn: the scheduler reads the head of each queue and the next cycle "
            "follows at once"
            if self.cut
            else f"waiting its turn: the scheduler places at most {self.max_placements} "
            "jobs per cycle and the next cycle follows at once"
        )
        for lane, jobs in self.lanes.items():
            start = self.cursor[lane]
            for d in jobs[start : start + window]:
                if d.job_id in self.done:
                    continue
                full = self._array_full(d)
                if full:
                    self.plan.reasons[d.job_id] = full
                elif d.queue in self.blocked:
                    self.plan.reasons[d.job_id] = self.blocked[d.queue]
                elif out_of_turns:
                    self.plan.reasons[d.job_id] = turn
                else:
                    self.plan.reasons[d.job_id] = self._why(d, lowest, rooms, why)
                    self.plan.unplaced.append(d)
        self.plan.unplaced.sort(key=lambda d: -d.class_priority)  # stable: urgent ones first

    def _why(
        self,
        d: Demand,
        lowest: QueueState | None,
        rooms: list[Room],
        why: dict[tuple[int, int, int], str],
    ) -> str:
        """Fair share if another queue is further below its share; else where room lacks."""
        q = self.queues[d.queue]
        if (
            lowest is not None
            and lowest.name != q.name
            and self._share(q.name) > self._share(lowest.name)
        ):
            return share_reason(q, lowest, self.cap, self.shard)
        shape = (d.cpu_milli, d.memory, d.gpu)
        if shape not in why:
            why[shape] = explain(d, rooms, self.totals, self.shard)
        return why[shape]


def _copy(q: QueueState) -> QueueState:
    return QueueState(
        q.name,
        q.weight,
        q.max_running_jobs,
        q.max_cpu_milli,
        q.max_memory,
        q.max_gpu,
        q.running,
        q.cpu_milli,
        q.memory,
        q.gpu,
    )
