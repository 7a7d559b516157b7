"""Master routing: pure. Which shard's queue each queued job goes to (PRODUCT.md §7).

A shard is *eligible* for a job when one of its live workers could ever hold it: the worker's
total capacity covers the request, and the job's `selector` labels are all found on the shard
or on that worker. Among the eligible shards the job goes to the one with the most headroom in
the job's dominant resource (the one it asks the largest share of); headroom is the shard's free
capacity minus what already waits in its queue, and each routed job takes its request out of
the chosen shard's headroom, so a burst of jobs spreads over the shards instead of piling onto
the first. A job no shard could hold stays in the intake with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jobfleet.scheduling.placement import Room
from jobfleet.units import format_memory

RESOURCES = ("cpu_milli", "memory", "gpu")


@dataclass(frozen=True, slots=True)
class Need:
    """A queued job as routing sees it. `shard`: where it waits now (for re-routing)."""

    job_id: str
    cpu_milli: int
    memory: int
    gpu: int = 0
    selector: Mapping[str, str] = field(default_factory=dict)
    shard: str | None = None


@dataclass(slots=True)
class ShardState:
    """One shard in this cycle: its labels, its live workers (total and free) and its queue."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    totals: Sequence[Room] = ()
    free: Sequence[Room] = ()
    queued: tuple[int, int, int] = (0, 0, 0)  # cpu_milli, memory, gpu already in its queue

    def headroom(self) -> list[int]:
        return [
            sum(getattr(r, res) for r in self.free) - self.queued[i]
            for i, res in enumerate(RESOURCES)
        ]


@dataclass(frozen=True, slots=True)
class RoutePlan:
    moves: dict[str, str]  # job_id -> shard
    reasons: dict[str, str]  # job_id -> why no shard can take it


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def can_hold(need: Need, shard: ShardState) -> bool:
    """Could some live worker of `shard` ever hold `need` (capacity and selector)?"""
    for w in shard.totals:
        big_enough = all(getattr(need, res) <= getattr(w, res) for res in RESOURCES)
        if big_enough and matches(need.selector, {**shard.labels, **w.labels}):
            return True
    return False


def dominant(need: Need, shards: Sequence[ShardState]) -> int:
    """Index (into RESOURCES) of the resource `need` asks the largest share of."""
    shares = []
    for res in RESOURCES:
        total = sum(getattr(w, res) for s in shards for w in s.totals)
        shares.append(getattr(need, res) / total if total else 0.0)
    return max(range(len(RESOURCES)), key=lambda i: shares[i])


def route(needs: Sequence[Need], shards: Sequence[ShardState]) -> RoutePlan:
    """Route `needs` (in priority order) to shards; see the module doc."""
    room = {s.name: s.headroom() for s in shards}
    moves: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for need in needs:
        candidates = [s for s in shards if can_hold(need, s)]
        if not candidates:
            reasons[need.job_id] = explain(need, shards)
            continue
        i = dominant(need, candidates)
        # Most headroom in the dominant resource; on a tie, the first shard in the list.
        best = max(reversed(candidates), key=lambda s: room[s.name][i])
        for j, res in enumerate(RESOURCES):
            room[best.name][j] -= getattr(need, res)
        moves[need.job_id] = best.name
    return RoutePlan(moves, reasons)


def reroute(stuck: Sequence[Need], shards: Sequence[ShardState]) -> list[str]:
    """Jobs waiting too long in a shard's queue that should go back to the intake.

    A job goes back when its shard can no longer hold it at all, or when another shard could
    hold it and has room for it now; a job whose only possible shard is its own stays put
    (sending it round again would only add events).
    """
    back = []
    for need in stuck:
        own = next((s for s in shards if s.name == need.shard), None)
        if own is None or not can_hold(need, own):
            back.append(need.job_id)
            continue
        others = [s for s in shards if s.name != need.shard and can_hold(need, s)]
        if any(_fits_now(need, s) for s in others):
            back.append(need.job_id)
    return back


def _fits_now(need: Need, shard: ShardState) -> bool:
    return any(
        all(getattr(need, res) <= getattr(r, res) for res in RESOURCES)
        and matches(need.selector, {**shard.labels, **r.labels})
        for r in shard.free
    )


def explain(need: Need, shards: Sequence[ShardState]) -> str:
    """Why no shard can take `need`, in words a person understands."""
    live = [s for s in shards if s.totals]
    if not live:
        names = ", ".join(s.name for s in shards)
        return f"no worker is registered in shard {names}" if names else "no worker is registered"
    if need.selector:
        wanted = ",".join(f"{k}={v}" for k, v in sorted(need.selector.items()))
        labelled = [
            s
            for s in live
            if any(matches(need.selector, {**s.labels, **w.labels}) for w in s.totals)
        ]
        if not labelled:
            return f"no live worker or shard has the labels {wanted} (selector)"
        live = labelled
    parts = [f"{s.name} {_largest(s.totals)}" for s in live]
    where = f"shard {live[0].name}" if len(live) == 1 else "any shard"
    asks = f"{need.cpu_milli / 1000:g} CPU, {format_memory(need.memory)} memory, {need.gpu} GPUs"
    if len(live) == 1:
        return (
            f"no worker in {where} is large enough: the largest has "
            f"{_largest(live[0].totals)} (it asks {asks})"
        )
    return f"no worker in {where} is large enough (it asks {asks}); largest: " + "; ".join(parts)


def _largest(totals: Sequence[Room]) -> str:
    cpu = max(t.cpu_milli for t in totals)
    mem = max(t.memory for t in totals)
    gpu = max(t.gpu for t in totals)
    return f"{cpu / 1000:g} CPU, {format_memory(mem)} memory, {gpu} GPUs"
