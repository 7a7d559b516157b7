"""The scheduler loop: thin. It reads a snapshot from the store, calls the pure algorithms,
and writes their decisions back. Woken by new events, and at least once a second."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobfleet.errors import NotLeader
from jobfleet.protocol import Capacity
from jobfleet.scheduling.cycle import CyclePlan, lanes_of, plan_cycle
from jobfleet.scheduling.placement import Demand, Room
from jobfleet.scheduling.preemption import plan_preemptions
from jobfleet.scheduling.routing import ShardState, explain, reroute, route

if TYPE_CHECKING:
    from jobfleet.store import Store
    from jobfleet.store.cycle import Classes

log = logging.getLogger("jobfleet.scheduler")
ROUTE_BATCH = 2000  # queued jobs routed per pass
PER_LANE = 200  # jobs read from the head of each lane (queue x class) per cycle
MAX_PLACEMENTS = 10_000  # per cycle; cycles repeat while they make progress
BUSY_WINDOW = 0.2  # seconds since the last big cycle during which we count as busy
BUSY_BATCH = 32  # a cycle moving this many jobs is "big": a lone job never waits to coalesce
COALESCE = 0.02  # how long a busy scheduler waits to gather changes before the next cycle
NOMINATION_TTL = 120.0  # how long a worker's room stays kept for a preemptor that waits

# A hook called after each cycle with its duration (seconds) and the jobs it moved: the seam
# metrics hang off (jobfleet.metrics.observe_cycle), instead of code inside the loop.
CycleHook = Callable[[float, int], None]


class Scheduler:
    def __init__(
        self,
        store: Store,
        *,
        shards: list[str],
        lease_timeout: float,
        housekeeping_every: float = 1.0,
        on_cycle: CycleHook | None = None,
        priority_classes: Classes | None = None,
        reroute_after: float = 60.0,
        gate: Callable[[], bool] | None = None,
        poll: float | None = None,
    ) -> None:
        self.store = store
        self.classes: Classes = priority_classes or {}
        self.shards = shards  # known from the start; shards of live workers are found each cycle
        self.reroute_after = reroute_after
        self.gate = gate  # leader election: a cycle acts only while it returns True
        self.poll = poll  # in a process of its own nothing wakes it: look this often
        self.lease_timeout = lease_timeout
        self.housekeeping_every = housekeeping_every
        self.on_cycle = on_cycle
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._more = False  # the last cycle stopped at a batch limit: more work may be there
        self._next_housekeeping = 0.0
        self._next_reroute = 0.0
        self._reasons: dict[str, str] = {}  # what we last wrote, so only changes are written
        # Preemptor job id -> (worker, its class priority, until): that worker's room is kept
        # for it while its victims stop, so lower-class jobs do not backfill it.
        self._nominated: dict[str, tuple[str, int, float]] = {}
        self._held_arrays: set[str] = set()  # job arrays at max_parallel after the last cycle
        self._thread = threading.Thread(target=self._loop, name="jobfleet-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        last_busy = 0.0
        while not self._stop.is_set():
            try:
                # Another cycle at once only while one may find more to do (it filled a batch
                # or moved jobs from a lane it read in part); otherwise a change wakes us.
                while (moved := self._timed_cycle()) and not self._stop.is_set():
                    if moved >= BUSY_BATCH:
                        last_busy = time.monotonic()
                    if not self._more:
                        break
            except NotLeader as exc:
                log.warning("%s: standing by", exc)
            except Exception:
                log.exception("scheduler cycle failed; retrying")
                self._stop.wait(0.5)
                continue
            self._wake.wait(timeout=self._idle_timeout())
            if time.monotonic() - last_busy < BUSY_WINDOW:
                # Under load, let changes pile up a moment: one big batch beats many small
                # ones. An idle scheduler acts at once, so a lone job is not delayed.
                self._stop.wait(COALESCE)
            self._wake.clear()

    def _idle_timeout(self) -> float:
        until_housekeeping = self._next_housekeeping - time.monotonic()
        timeout = max(0.01, min(self.housekeeping_every, until_housekeeping))
        if self.poll is not None:
            timeout = min(timeout, self.poll)
        try:
            backoff = self.store.next_backoff()
        except Exception:  # the database is away: the next cycle says so and retries
            log.warning("could not read the next retry backoff; waking again in %.2fs", timeout)
            return timeout
        if backoff is not None:
            timeout = min(timeout, max(0.01, backoff - time.time()))
        return timeout

    def _timed_cycle(self) -> int:
        if self.on_cycle is None:
            return self.cycle()
        began = time.perf_counter()
        moved = self.cycle()
        self.on_cycle(time.perf_counter() - began, moved)
        return moved

    def cycle(self) -> int:
        """One pass: route the intake to shards, then place each shard's queue on its workers;
        returns how many jobs moved. A standby (the gate says no) does nothing."""
        self._more = False
        if self.gate is not None and not self.gate():
            return 0
        moved = 0
        housekeeping = time.monotonic() >= self._next_housekeeping
        if housekeeping:
            moved += self.store.expire_leases() + self.store.resolve_dependencies()
            self.store.break_gangs()
            moved += self.store.fire_schedules()  # §14.2: the leader fires the due ticks
            self.store.roll_up_usage()  # §14.3: the hours that are over, a chunk at a time
            self._next_housekeeping = time.monotonic() + self.housekeeping_every
        states = self.store.shard_states(fresh_after=time.time() - self.lease_timeout)
        moved += self._route(states, housekeeping)
        for state in states:
            if state.totals:
                moved += self._place(state.name, list(state.free), list(state.totals))
        return moved

    def _route(self, states: list[ShardState], housekeeping: bool) -> int:
        """Master routing (pure `routing.route`); jobs too large for every worker stay out.
        Housekeeping first gives back jobs a shard could not place for `reroute_after`."""
        moved = 0
        if housekeeping and time.monotonic() >= self._next_reroute:
            # Looking for stuck jobs reads the shards' queues: a few times per reroute_after.
            self._next_reroute = time.monotonic() + self.reroute_after / 6
            back = reroute(self.store.stuck(older_than=time.time() - self.reroute_after), states)
            moved += self.store.return_to_intake(back, waited=self.reroute_after)
        largest = _largest([r for s in states for r in s.totals])
        needs = self.store.intake(limit=ROUTE_BATCH, largest=largest)
        if len(needs) >= ROUTE_BATCH:
            self._more = True
        if needs and len(states) > 1:  # only then does what each queue holds matter
            queued = self.store.queued_demand()
            for state in states:
                state.queued = queued.get(state.name, (0, 0, 0))
        plan = route(needs, states)
        moved += self.store.route_to(plan.moves)
        for job_id in plan.moves:
            self._reasons.pop(job_id, None)
        reasons = dict(plan.reasons)
        if housekeeping and largest is not None:
            too_big = self.store.intake(limit=50, larger_than=largest)
            reasons.update({n.job_id: explain(n, states) for n in too_big})
        changed = {j: r for j, r in reasons.items() if self._reasons.get(j) != r}
        self.store.set_intake_reasons(changed)
        self._reasons.update(changed)
        return moved

    def _place(self, shard: str, free: list[Room], totals: list[Room]) -> int:
        """Read the lanes' heads, plan the cycle (pure), lease, preempt, write the reasons."""
        queues = self.store.queue_states()
        # Arrays held at max_parallel last cycle stay out of the lanes' heads while they are
        # still full: their jobs would fill the heads and hide the queue's other jobs.
        held = {a for a, n in self.store.array_room(self._held_arrays).items() if n <= 0}
        demands, gangs, unread = self.store.lanes(
            shard, sorted(queues), self.classes, per_lane=PER_LANE, held=held
        )
        self._held_arrays = held
        if not demands:
            return 0
        arrays = self.store.array_room(d.array for d in demands if d.array is not None)
        plan = plan_cycle(
            lanes_of(demands),
            queues,
            free,
            totals,
            shard,
            gangs=gangs,
            closed=self.store.preempting_workers(shard),
            reserved=self._reserved(),
            max_placements=MAX_PLACEMENTS,
            unread=unread,
            arrays=arrays,
        )
        self._held_arrays |= _full_after(arrays, demands, plan.placed)
        leased = self.store.lease(shard, plan.placed, lease_timeout=self.lease_timeout)
        if leased and (unread or len(plan.placed) >= MAX_PLACEMENTS):
            self._more = True
        reasons = plan.reasons
        if plan.unplaced:
            reasons.update(self._preempt(shard, plan, totals))
        changed = {j: r for j, r in reasons.items() if self._reasons.get(j) != r}
        self.store.set_reasons(changed)
        for job_id, _ in plan.placed:
            self._reasons.pop(job_id, None)
            self._nominated.pop(job_id, None)
        self._reasons.update(changed)
        if len(self._reasons) > 100_000:
            self._reasons.clear()
        return leased

    def _reserved(self) -> dict[str, int]:
        """Workers whose room is kept for a waiting preemptor, with its class priority."""
        now = time.monotonic()
        self._nominated = {j: n for j, n in self._nominated.items() if n[2] > now}
        out: dict[str, int] = {}
        for worker, level, _ in self._nominated.values():
            out[worker] = max(level, out.get(worker, level))
        return out

    def _preempt(self, shard: str, plan: CyclePlan, totals: list[Room]) -> dict[str, str]:
        """Jobs that fit nowhere may evict lower-class preemptible jobs (pure choice); they
        wait for the victims to stop, and say so."""
        floor = min((c.priority for c in self.classes.values() if c.preemptible), default=None)
        if floor is None or all(d.class_priority <= floor for d in plan.unplaced):
            return {}
        # Free room from the same read as the running jobs (not from the cycle's start): a
        # victim that ended in between must not look both gone and still holding its room.
        running = self.store.running(shard, self.classes)
        room = {}
        for t in totals:
            held = running.get(t.worker, [])
            room[t.worker] = (
                t.cpu_milli - sum(r.cpu_milli for r in held),
                t.memory - sum(r.memory for r in held),
                t.gpu - sum(r.gpu for r in held),
            )
        evictions = plan_preemptions(plan.unplaced, room, running)
        level = {d.job_id: d.class_priority for d in plan.unplaced}
        until = time.monotonic() + NOMINATION_TTL
        for job_id, e in evictions.items():
            self._nominated[job_id] = (e.worker, level.get(job_id, 0), until)
        self.store.request_preemptions([v for e in evictions.values() for v in e.victims])
        for job_id, e in evictions.items():
            if e.victims:
                log.info("job %s preempts %s on %s", job_id, ", ".join(e.victims), e.worker)
        return {
            job_id: f"waiting for {e.waiting_for} preempted jobs to stop on worker {e.worker}"
            for job_id, e in evictions.items()
        }


def _full_after(
    arrays: dict[str, int], demands: list[Demand], placed: list[tuple[str, str]]
) -> set[str]:
    """The arrays with no room left once this cycle's placements are made."""
    left = dict(arrays)
    array_of = {d.job_id: d.array for d in demands if d.array in left}
    for job_id, _ in placed:
        if job_id in array_of:
            left[str(array_of[job_id])] -= 1
    return {a for a, n in left.items() if n <= 0}


def _largest(totals: list[Room]) -> Capacity | None:
    """The most CPU, memory and GPUs any one worker has (None: no live worker)."""
    if not totals:
        return None
    return Capacity(
        max(t.cpu_milli for t in totals), max(t.memory for t in totals), max(t.gpu for t in totals)
    )
