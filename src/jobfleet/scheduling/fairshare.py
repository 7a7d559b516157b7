"""Dominant-resource fair share (DRF) across queues, weighted, and the queues' limits: pure.

A queue's dominant share is the largest fraction of the shard's capacity (CPU, memory or GPUs)
its running jobs hold. Divided by the queue's weight, it orders the queues: the queue with the
lowest weighted share gets the next placement, so with equal demand the queues' shares converge
to their weights (Ghodsi et al., "Dominant Resource Fairness", NSDI 2011).
"""

from __future__ import annotations

from dataclasses import dataclass

from jobfleet.protocol import Capacity
from jobfleet.scheduling.placement import Demand
from jobfleet.units import format_memory


@dataclass(slots=True)
class QueueState:
    """A queue's settings and what it holds now (its LEASED and RUNNING jobs)."""

    name: str
    weight: float = 1.0
    max_running_jobs: int | None = None
    max_cpu_milli: int | None = None
    max_memory: int | None = None
    max_gpu: int | None = None
    running: int = 0
    cpu_milli: int = 0
    memory: int = 0
    gpu: int = 0

    def add(self, d: Demand, sign: int = 1) -> None:
        self.running += sign
        self.cpu_milli += sign * d.cpu_milli
        self.memory += sign * d.memory
        self.gpu += sign * d.gpu


def dominant_share(q: QueueState, cap: Capacity) -> float:
    """The largest fraction of `cap` the queue holds, over CPU, memory and GPUs."""
    share = 0.0
    for used, total in ((q.cpu_milli, cap.cpu_milli), (q.memory, cap.memory), (q.gpu, cap.gpu)):
        if total > 0:
            share = max(share, used / total)
    return share


def weighted_share(q: QueueState, cap: Capacity) -> float:
    return dominant_share(q, cap) / q.weight if q.weight > 0 else float("inf")


def count_limit(q: QueueState, n: int = 1) -> str | None:
    """Why the queue cannot start `n` more jobs now (max_running_jobs), or None."""
    if q.max_running_jobs is None or q.running + n <= q.max_running_jobs:
        return None
    if q.running >= q.max_running_jobs:
        return f"queue {q.name} is at max_running_jobs {q.max_running_jobs}"
    room = q.max_running_jobs - q.running
    return (
        f"queue {q.name} has room for {room} more running jobs under max_running_jobs "
        f"{q.max_running_jobs}; this gang needs {n}"
    )


def resource_limit(q: QueueState, ds: list[Demand]) -> str | None:
    """Why the queue cannot also hold `ds` under its max_resources, or None."""
    if q.max_cpu_milli is None and q.max_memory is None and q.max_gpu is None:
        return None  # the common case, checked once per placement: keep it cheap
    for label, limit, used, need, fmt in (
        ("cpu", q.max_cpu_milli, q.cpu_milli, sum(d.cpu_milli for d in ds), _cores),
        ("memory", q.max_memory, q.memory, sum(d.memory for d in ds), format_memory),
        ("gpu", q.max_gpu, q.gpu, sum(d.gpu for d in ds), str),
    ):
        if limit is not None and need and used + need > limit:
            return (
                f"queue {q.name} is at max_resources {label} {fmt(limit)}: its running jobs "
                f"hold {fmt(used)} and this job asks {fmt(need)}"
            )
    return None


def _cores(milli: int) -> str:
    return f"{milli / 1000:g}"


def share_reason(q: QueueState, lowest: QueueState, cap: Capacity, shard: str) -> str:
    """Why a job of `q` waits while `lowest` (the queue with the lowest weighted share) goes."""
    return (
        f"waiting for its fair share: queue {q.name} has {dominant_share(q, cap):.0%} of shard "
        f"{shard} (weight {q.weight:g}); queue {lowest.name} "
        f"({dominant_share(lowest, cap):.0%}, weight {lowest.weight:g}) goes first"
    )
