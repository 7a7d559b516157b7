"""Why a job fits nowhere (`placement.explain`), as a planned cycle reports it. Placing itself is
tested in test_cycle.py."""

from __future__ import annotations

import copy

from jobfleet.scheduling.cycle import lanes_of, plan_cycle
from jobfleet.scheduling.placement import Demand, Room, explain

GI = 2**30


def room(worker: str, cpu: int, mem: int, gpu: int = 0) -> Room:
    return Room(worker, cpu, mem, gpu)


def fresh(rooms: list[Room]) -> list[Room]:
    """Planning uses up the rooms it is given: hand it copies so the originals stay intact."""
    return copy.deepcopy(rooms)


def test_explain_a_job_too_big_for_any_worker() -> None:
    totals = [room("a", 8000, 16 * GI), room("b", 4000, 32 * GI)]
    d = Demand("j", 16_000, GI)

    reason = explain(d, fresh(totals), totals, "gpu-pool")
    assert reason.startswith("no worker in shard gpu-pool is large enough")
    assert "16000m CPU" in reason and "8000m" in reason

    plan = plan_cycle(lanes_of([d]), {}, fresh(totals), totals, "gpu-pool")
    assert plan.placed == [] and plan.reasons == {"j": reason}

    gpu_reason = explain(Demand("g", 1000, GI, gpu=2), fresh(totals), totals, "gpu-pool")
    assert "large enough" in gpu_reason and "GPUs" in gpu_reason


def test_explain_with_no_worker_registered() -> None:
    d = Demand("j", 1000, GI)
    assert explain(d, [], [], "main") == "no worker is registered in shard main"
    plan = plan_cycle(lanes_of([d]), {}, [], [], "main")
    assert plan.placed == [] and plan.reasons == {"j": "no worker is registered in shard main"}


def test_explain_a_job_that_would_fit_an_idle_worker_waits_for_room() -> None:
    totals = [room("a", 8000, 16 * GI)]
    busy = [room("a", 500, 16 * GI)]
    reason = explain(Demand("j", 1000, GI), busy, totals, "s")
    assert "large enough" not in reason
    assert "waiting for free CPU" in reason
