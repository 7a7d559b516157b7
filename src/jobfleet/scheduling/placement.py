"""Placement: pure best-fit of pending jobs onto workers. Never over-commits a worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jobfleet.scheduling.avoid import usable


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


@dataclass(frozen=True, slots=True)
class Plan:
    placed: list[tuple[str, str]]  # (job_id, worker)
    reasons: dict[str, str]  # job_id -> why it was not placed


def _leftover(room: Room, d: Demand, total: Room) -> float:
    """Best fit: the smaller the share of the worker left free after placing, the better."""
    share = 0.0
    for free, need, cap in (
        (room.cpu_milli, d.cpu_milli, total.cpu_milli),
        (room.memory, d.memory, total.memory),
    ):
        share += (free - need) / cap if cap else 0.0
    return share


def place(
    demands: Sequence[Demand], rooms: Sequence[Room], totals: Sequence[Room], shard: str
) -> Plan:
    """Place `demands` in order (already sorted by priority, then submit order).

    A job that does not fit is skipped (smaller jobs behind it may still fit) and gets a reason.
    Reasons are worked out once per shape of request, so a long queue costs little.
    """
    total_of = {t.worker: t for t in totals}
    placed: list[tuple[str, str]] = []
    reasons: dict[str, str] = {}
    why: dict[tuple[int, int, int, frozenset[str]], str] = {}
    for d in demands:
        best: Room | None = None
        best_score = 0.0
        candidates = usable(d, rooms, totals)
        for room in candidates:
            if room.fits(d):
                score = _leftover(room, d, total_of.get(room.worker, room))
                if best is None or score < best_score:
                    best, best_score = room, score
        if best is None:
            shape = (d.cpu_milli, d.memory, d.gpu, d.avoid)
            if shape not in why:
                why[shape] = explain(d, candidates, totals, shard)
            reasons[d.job_id] = why[shape]
            continue
        best.take(d)
        why.clear()  # the rooms changed
        placed.append((d.job_id, best.worker))
    return Plan(placed, reasons)


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
