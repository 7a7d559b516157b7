"""Preemption by priority class: which running jobs to evict so an urgent job fits. Pure.

A job that fits nowhere may evict running jobs on *one* worker, all or nothing, choosing:
only preemptible jobs of a strictly lower class priority; the fewest of them; among sets of
that size, the least urgent (lowest highest-class, then lowest class and job priorities). A
worker whose jobs are already being stopped (a preemption in progress) is used first, without
new victims, when their room is enough: the job waits for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from jobfleet.scheduling.placement import Demand

EXACT_UP_TO = 12  # eligible jobs on a worker: exact search below, greedy above


@dataclass(frozen=True, slots=True)
class Running:
    """A LEASED or RUNNING job on a worker, as preemption sees it."""

    job_id: str
    worker: str
    cpu_milli: int
    memory: int
    gpu: int = 0
    class_priority: int = 0
    priority: int = 0
    preemptible: bool = True
    stopping: bool = False  # a preemption of it is already in progress


@dataclass(frozen=True, slots=True)
class Eviction:
    worker: str
    victims: tuple[str, ...]  # new preemptions to ask for
    waiting_for: int  # jobs whose stop the preemptor waits for (victims + already stopping)


Vec = tuple[int, int, int]


def _vec(x: Demand | Running) -> Vec:
    return (x.cpu_milli, x.memory, x.gpu)


def _covers(got: Vec, need: Vec) -> bool:
    return got[0] >= need[0] and got[1] >= need[1] and got[2] >= need[2]


def _sum(items: Iterable[Running]) -> Vec:
    c = m = g = 0
    for r in items:
        c, m, g = c + r.cpu_milli, m + r.memory, g + r.gpu
    return (c, m, g)


def _cost(victims: Sequence[Running]) -> tuple[int, int, int, int]:
    """Smaller is better: fewest victims, then the least urgent."""
    return (
        len(victims),
        max((v.class_priority for v in victims), default=0),
        sum(v.class_priority for v in victims),
        sum(v.priority for v in victims),
    )


def victims_on_worker(
    d: Demand, free: Vec, running: Sequence[Running]
) -> tuple[list[Running], int] | None:
    """(new victims, jobs to wait for) that make room for `d` on one worker, or None."""
    stopping = [r for r in running if r.stopping]
    have = _sum(stopping)
    deficit = (
        max(0, d.cpu_milli - free[0] - have[0]),
        max(0, d.memory - free[1] - have[1]),
        max(0, d.gpu - free[2] - have[2]),
    )
    if deficit == (0, 0, 0):
        return [], len(stopping)
    eligible = [
        r
        for r in running
        if not r.stopping and r.preemptible and r.class_priority < d.class_priority
    ]
    if not _covers(_sum(eligible), deficit):
        return None
    chosen = _exact(eligible, deficit) if len(eligible) <= EXACT_UP_TO else None
    chosen = chosen or _greedy(eligible, deficit)
    return chosen, len(chosen) + len(stopping)


def _exact(eligible: list[Running], deficit: Vec) -> list[Running] | None:
    for k in range(1, len(eligible) + 1):
        fits = [list(c) for c in combinations(eligible, k) if _covers(_sum(c), deficit)]
        if fits:
            return min(fits, key=_cost)
    return None


def _greedy(eligible: list[Running], deficit: Vec) -> list[Running]:
    """Least urgent first, then drop any victim the others do not need (most urgent first)."""
    order = sorted(eligible, key=lambda r: (r.class_priority, r.priority, -r.cpu_milli))
    chosen: list[Running] = []
    for r in order:
        if _covers(_sum(chosen), deficit):
            break
        chosen.append(r)
    for r in sorted(chosen, key=lambda r: (-r.class_priority, -r.priority)):
        rest = [c for c in chosen if c is not r]
        if _covers(_sum(rest), deficit):
            chosen = rest
    return chosen


def choose_eviction(
    d: Demand, free: Mapping[str, Vec], running: Mapping[str, Sequence[Running]]
) -> Eviction | None:
    """The best worker and victims for `d` over all workers, or None if none can make room."""
    best: tuple[tuple[int, int, int, int], str, list[Running], int] | None = None
    for worker in sorted(running):
        found = victims_on_worker(d, free.get(worker, (0, 0, 0)), running[worker])
        if found is None:
            continue
        victims, waiting = found
        key = _cost(victims)
        if best is None or key < best[0]:
            best = (key, worker, victims, waiting)
    if best is None:
        return None
    return Eviction(best[1], tuple(v.job_id for v in best[2]), best[3])


def plan_preemptions(
    unplaced: Sequence[Demand],
    free: Mapping[str, Vec],
    running: Mapping[str, Sequence[Running]],
    *,
    limit: int = 16,
) -> dict[str, Eviction]:
    """Evictions for up to `limit` jobs that fitted nowhere (in order). A worker serves one
    preemptor per cycle; gang members do not preempt."""
    floor = min(
        (r.class_priority for rs in running.values() for r in rs if r.preemptible),
        default=None,
    )
    if floor is None:
        return {}
    out: dict[str, Eviction] = {}
    left = {w: list(rs) for w, rs in running.items()}
    for d in unplaced:
        if len(out) >= limit:
            break
        if d.gang is not None or d.class_priority <= floor:
            continue
        ev = choose_eviction(d, free, left)
        if ev is not None:
            out[d.job_id] = ev
            del left[ev.worker]
    return out
