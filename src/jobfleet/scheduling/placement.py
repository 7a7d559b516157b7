"""What placement works on: a pending job (`Demand`), a worker's free room (`Room`), and why a
job fits nowhere (`explain`). The placing itself is `cycle.plan_cycle`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class Demand:
    """One pending job as the scheduler sees it (already in its queue's order)."""

    job_id: str
    cpu_milli: int
    memory: int
    gpu: int = 0
    avoid: frozenset[str] = frozenset()  # workers not to use if another can hold it
    selector: Mapping[str, str] = field(default_factory=dict)  # labels the worker must have
    queue: str = "default"
    class_priority: int = 0  # of its priority class: higher classes are placed first
    gang: str | None = None
    gang_size: int = 1
    array: str | None = None  # its job array: at most max_parallel of them run at once


@dataclass(slots=True)
class Room:
    """A worker's free capacity in this cycle."""

    worker: str
    cpu_milli: int
    memory: int
    gpu: int = 0
    labels: dict[str, str] = field(default_factory=dict)

    def fits(self, d: Demand) -> bool:
        return (
            d.cpu_milli <= self.cpu_milli
            and d.memory <= self.memory
            and d.gpu <= self.gpu
            and all(self.labels.get(k) == v for k, v in d.selector.items())
        )

    def take(self, d: Demand) -> None:
        self.cpu_milli -= d.cpu_milli
        self.memory -= d.memory
        self.gpu -= d.gpu


def explain(d: Demand, rooms: Sequence[Room], totals: Sequence[Room], shard: str) -> str:
    """Why `d` fits nowhere, in words a person understands."""
    if not totals:
        return f"no worker is registered in shard {shard}"
    for label, attr, unit in (
        ("GPUs", "gpu", ""),
        ("CPU", "cpu_milli", "m"),
        ("memory", "memory", " bytes"),
    ):
        need = getattr(d, attr)
        if need and all(getattr(t, attr) < need for t in totals):
            biggest = max(getattr(t, attr) for t in totals)
            return (
                f"no worker in shard {shard} is large enough: it asks {need}{unit} {label}, "
                f"the largest worker has {biggest}{unit}"
            )
    for label, attr in (("GPUs", "gpu"), ("CPU", "cpu_milli"), ("memory", "memory")):
        need = getattr(d, attr)
        if need and all(getattr(r, attr) < need for r in rooms):
            return f"waiting for free {label}: every worker in shard {shard} is busy"
    return f"no single worker in shard {shard} has room for it right now"
