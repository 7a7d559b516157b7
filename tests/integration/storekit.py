"""Shared steps for store tests: a worker, one scheduler cycle, leasing and starting a run."""

from __future__ import annotations

import time
from typing import Any

from jobfleet.models import JobSpec
from jobfleet.protocol import Assignment, Capacity, Started
from jobfleet.scheduling.placement import place
from jobfleet.store import Store

SHARD = "default"
WORKER = "w1"
CAPACITY = Capacity(cpu_milli=16_000, memory=64 * 2**30, gpu=0)


def spec(**kw: Any) -> JobSpec:
    kw.setdefault("command", ["true"])
    return JobSpec(**kw)


def register(store: Store, name: str = WORKER) -> None:
    store.register_worker(name, SHARD, CAPACITY)


def schedule_cycle(store: Store, *, lease_timeout: float = 60.0) -> int:
    """One master + shard scheduler cycle: route, place (pure), lease. Returns runs leased."""
    store.route(SHARD)
    free, total = store.rooms(SHARD, fresh_after=time.time() - 60)
    plan = place(store.pending(SHARD), free, total, SHARD)
    store.set_reasons(plan.reasons)
    return store.lease(SHARD, plan.placed, lease_timeout=lease_timeout)


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
