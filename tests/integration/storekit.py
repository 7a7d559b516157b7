"""Shared steps for store tests: a worker, one scheduler cycle, leasing and starting a run."""

from __future__ import annotations

import time
from typing import Any

from jobfleet.models import JobSpec
from jobfleet.protocol import Assignment, Capacity, Started
from jobfleet.scheduling.cycle import CyclePlan, lanes_of, plan_cycle
from jobfleet.scheduling.placement import Demand, Room
from jobfleet.store import Store

SHARD = "default"
WORKER = "w1"
CAPACITY = Capacity(cpu_milli=16_000, memory=64 * 2**30, gpu=0)


def spec(**kw: Any) -> JobSpec:
    kw.setdefault("command", ["true"])
    return JobSpec(**kw)


def register(store: Store, name: str = WORKER) -> None:
    store.register_worker(name, SHARD, CAPACITY)


def route(store: Store, shard: str = SHARD, *, limit: int = 2000) -> int:
    """The master router's move, all to `shard`: eligible QUEUED jobs (backoff over), in
    priority then submit order, into the shard's queue. Returns how many moved."""
    return store.route_to({n.job_id: shard for n in store.intake(limit=limit)})


def pending(store: Store, shard: str = SHARD) -> list[Demand]:
    """The shard's queue as the scheduler reads it (lane by lane, each in placement order)."""
    demands, _, _ = store.lanes(shard, sorted(store.queue_states()), {}, per_lane=2000)
    return demands


def rooms(store: Store, shard: str = SHARD, *, fresh_after: float) -> tuple[list[Room], list[Room]]:
    """(free, total) room of the shard's READY workers heard from since `fresh_after`."""
    for state in store.shard_states(fresh_after=fresh_after):
        if state.name == shard:
            return list(state.free), list(state.totals)
    return [], []


def plan_shard(store: Store, shard: str = SHARD) -> CyclePlan:
    """One pure placement plan of the shard's queue on its live workers."""
    free, total = rooms(store, shard, fresh_after=time.time() - 60)
    return plan_cycle(lanes_of(pending(store, shard)), store.queue_states(), free, total, shard)


def schedule_cycle(store: Store, *, lease_timeout: float = 60.0) -> int:
    """One master + shard scheduler cycle: route, plan (pure), lease. Returns runs leased."""
    route(store)
    p = plan_shard(store)
    store.set_reasons(p.reasons)
    return store.lease(SHARD, p.placed, lease_timeout=lease_timeout)


def lease_one(
    store: Store, job_id: str, worker: str = WORKER, *, lease_timeout: float = 60.0
) -> Assignment:
    schedule_cycle(store, lease_timeout=lease_timeout)
    found = [a for a in store.assignments(worker) if a.job_id == job_id]
    assert len(found) == 1, found
    return found[0]


def start(store: Store, a: Assignment, worker: str = WORKER) -> None:
    res = store.report(worker, [Started(a.run_id, a.fencing, time.time())], [])
    assert res.accepted == [a.run_id] and not res.refused
