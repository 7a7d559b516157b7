"""The placement algorithm alone: one scheduling cycle from a snapshot, no database.

1,000,000 queued jobs in 100 queues (weights 1-4, a few with limits, 5% of the jobs in an
`urgent` class, some asking for GPUs) onto 1,000 workers of mixed sizes (a fifth with GPUs),
a quarter of them half busy. One cycle places up to 10,000 jobs honouring priority classes,
weighted fair share, limits and priorities. Goal: that cycle in <= 1 s.

    .venv/bin/python -m bench.schedule [--jobs 1000000] [--queues 100] [--workers 1000]
        [--placements 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import time

from bench.common import machine, median, now_utc, say
from jobfleet.scheduling.cycle import Lane, lanes_of, plan_cycle
from jobfleet.scheduling.fairshare import QueueState
from jobfleet.scheduling.placement import Demand, Room

GI = 2**30
SHAPES = [(8, 32, 0), (16, 64, 0), (32, 128, 0), (64, 256, 0), (32, 256, 8), (16, 128, 4)]


def make_workers(n: int, rnd: random.Random) -> tuple[list[Room], list[Room]]:
    totals, free = [], []
    for i in range(n):
        cpu, mem, gpu = SHAPES[i % len(SHAPES)] if i % 5 else SHAPES[4 + (i // 5) % 2]
        totals.append(Room(f"w{i:04d}", cpu * 1000, mem * GI, gpu))
        busy = 0.5 if rnd.random() < 0.25 else 0.0
        free.append(
            Room(f"w{i:04d}", int(cpu * 1000 * (1 - busy)), int(mem * GI * (1 - busy)), gpu)
        )
    return totals, free


def make_jobs(n: int, queues: int, rnd: random.Random) -> list[Demand]:
    """Jobs in placement order within each queue (the store's ORDER BY gives that order)."""
    out = []
    for k in range(n):
        q = f"q{k % queues:03d}"
        gpu = 1 if rnd.random() < 0.03 else 0
        out.append(
            Demand(
                f"j{k:07d}",
                rnd.choice((250, 500, 1000, 2000, 4000)),
                rnd.choice((256, 512, 1024, 4096)) * 2**20,
                gpu,
                queue=q,
                class_priority=100 if rnd.random() < 0.05 else 0,
            )
        )
    return out


def make_queues(n: int) -> dict[str, QueueState]:
    qs = {}
    for i in range(n):
        q = QueueState(f"q{i:03d}", weight=float(1 + i % 4))
        if i % 10 == 0:
            q.max_running_jobs = 50
        if i % 10 == 1:
            q.max_cpu_milli = 40_000
        qs[q.name] = q
    return qs


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.schedule", description=__doc__)
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--queues", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--placements", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    m = machine()
    say("== jobfleet benchmark: schedule (pure placement algorithm) ==")
    say(f"date:     {now_utc()}")
    say(f"machine:  {m.line()}")
    say(f"jobfleet: {m.git}; host-speed sentinel {m.speed:.1f}")
    rnd = random.Random(7)
    t0 = time.perf_counter()
    jobs = make_jobs(args.jobs, args.queues, rnd)
    totals, free = make_workers(args.workers, rnd)
    queues = make_queues(args.queues)
    say(
        f"snapshot: {args.jobs:,} jobs, {args.queues} queues, {args.workers} workers "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )
    t0 = time.perf_counter()
    lanes: dict[Lane, list[Demand]] = lanes_of(jobs)
    say(
        f"lanes:    {len(lanes)} (grouping the snapshot: {time.perf_counter() - t0:.2f} s, "
        "done by the store's per-lane reads in production)"
    )
    times, placed = [], 0
    for run in range(args.runs):
        fresh = [Room(r.worker, r.cpu_milli, r.memory, r.gpu) for r in free]
        t0 = time.perf_counter()
        plan = plan_cycle(lanes, queues, fresh, totals, "bench", max_placements=args.placements)
        times.append(time.perf_counter() - t0)
        placed = len(plan.placed)
        say(
            f"run {run + 1}: {placed:,} placements, {len(plan.reasons):,} reasons in "
            f"{times[-1] * 1000:.0f} ms"
        )
    t = median(times)
    ok = placed >= min(args.placements, args.jobs) and t <= 1.0
    say(
        f"median:   {t * 1000:.0f} ms for {placed:,} placements "
        f"({placed / t:,.0f} placements/s); goal <= 1 s: {'MET' if ok else 'NOT MET'}"
    )
    say(
        f"RESULTS: | schedule (pure) | {args.jobs:,} jobs / {args.queues} queues / "
        f"{args.workers} workers | {placed:,} placements in {t * 1000:.0f} ms | {m.short()} |"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
