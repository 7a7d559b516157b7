"""Placement through PostgreSQL: the real scheduler cycle (`Scheduler.cycle`) against a
database holding 1,000,000 queued jobs, with 1,000 simulated workers (rows, no processes).

Set-up (not timed): a fresh database; 100 queues (weights 1-4); N jobs written straight into
the shard's queue (state SCHEDULED) with COPY - intake and routing are measured by
bench/submit.py, not here; 1,000 workers of mixed sizes registered. Then, timed: scheduler
cycles (read the lanes' heads, plan, lease: jobs LEASED, runs and `leased` events written,
reasons) until `--placements` jobs are leased. Between cycles the simulated workers finish
every leased run at once (one UPDATE, not timed), so room frees as it would on a busy fleet.

Reports placements committed per second of cycle time, and this process's memory (RSS now
and its peak) with the queue loaded. Goals: >= 10,000 placements/s; <= 1.5 GB.

    .venv/bin/python -m bench.schedule_pg [-n 1000000] [--placements 200000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from bench.common import database, machine, now_utc, say
from jobfleet.ids import new_id
from jobfleet.protocol import Capacity
from jobfleet.scheduling.loop import Scheduler
from jobfleet.store import Store
from jobfleet.store.cycle import ClassInfo
from jobfleet.store.schema import jobs, runs

SHARD = "bench"
GI = 2**30
SHAPES = [(8, 32, 0), (16, 64, 0), (32, 128, 0), (64, 256, 0), (32, 256, 8), (16, 128, 4)]
CLASSES = {"default": ClassInfo(0, True), "urgent": ClassInfo(100, False)}


def rss() -> tuple[float, float]:
    """(RSS now, peak RSS) of this process in MiB."""
    got = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            got[key] = int(value.split()[0]) / 1024
    return got["VmRSS"], got["VmHWM"]


def load_jobs(store: Store, n: int, queues: int) -> None:
    rnd = random.Random(7)
    raw = store.writer.raw_connection()
    try:
        cur = raw.cursor()
        cols = (
            "id, queue, job_set, state, priority, neg_priority, priority_class, cpu_milli, "
            "memory, gpu, spec, labels, shard, created_at, updated_at"
        )
        now = time.time()
        spec = json.dumps({"command": ["true"]})
        with cur.copy(f"COPY jobs ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for k in range(n):
                prio = rnd.choice((0, 0, 0, 1, 5))
                copy.write_row(
                    (
                        new_id(),
                        f"q{k % queues:03d}",
                        "bench",
                        "SCHEDULED",
                        prio,
                        -prio,
                        "urgent" if rnd.random() < 0.05 else None,
                        rnd.choice((250, 500, 1000, 2000, 4000)),
                        rnd.choice((256, 512, 1024, 4096)) * 2**20,
                        1 if rnd.random() < 0.03 else 0,
                        spec,
                        "{}",
                        SHARD,
                        now,
                        now,
                    )
                )
        raw.commit()
        cur.execute("ANALYZE jobs")
        raw.commit()
    finally:
        raw.close()


def finish_leased(store: Store) -> None:
    """The simulated workers end every leased run (one statement each table; not timed)."""
    now = time.time()
    with store.writer.begin() as conn:
        conn.execute(
            jobs.update()
            .where(jobs.c.state == "LEASED", jobs.c.shard == SHARD)
            .values(state="SUCCEEDED", finished_at=now)
        )
        conn.execute(runs.update().where(runs.c.state == "LEASED").values(state="SUCCEEDED"))


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.schedule_pg", description=__doc__)
    ap.add_argument("-n", type=int, default=1_000_000, help="queued jobs")
    ap.add_argument("--queues", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--placements", type=int, default=200_000, help="stop after this many")
    ap.add_argument("--database", default="postgres", help="postgres (fresh) or a URL")
    args = ap.parse_args()
    m = machine()
    say("== jobfleet benchmark: schedule_pg (scheduler cycles through PostgreSQL) ==")
    say(f"date:     {now_utc()}")
    say(f"machine:  {m.line()}")
    say(f"jobfleet: {m.git}; host-speed sentinel {m.speed:.1f}")
    with tempfile.TemporaryDirectory() as tmp, database(args.database, Path(tmp)) as db:
        say(f"database: {db.version}")
        store = Store(db.url)
        store.migrate()
        store.ensure_defaults(shard=SHARD)
        for i in range(args.queues):
            store.upsert_queue(f"q{i:03d}", weight=float(1 + i % 4), config={})
        t0 = time.perf_counter()
        load_jobs(store, args.n, args.queues)
        say(f"loaded:   {args.n:,} SCHEDULED jobs in {time.perf_counter() - t0:.0f} s (COPY)")
        for i in range(args.workers):
            cpu, mem, gpu = SHAPES[i % len(SHAPES)]
            store.register_worker(f"w{i:04d}", SHARD, Capacity(cpu * 1000, mem * GI, gpu))
        sched = Scheduler(store, shards=[SHARD], lease_timeout=3600, priority_classes=CLASSES)
        base_rss = rss()
        say(f"memory:   {base_rss[0]:.0f} MiB RSS before the first cycle")
        placed, busy, cycles = 0, 0.0, 0
        while placed < args.placements:
            t0 = time.perf_counter()
            moved = sched.cycle()
            busy += time.perf_counter() - t0
            cycles += 1
            placed += moved
            if moved == 0:
                break
            finish_leased(store)
        now, peak = rss()
        rate = placed / busy if busy else 0.0
        say(f"cycles:   {cycles}, {placed:,} placements committed in {busy:.1f} s of cycle time")
        say(
            f"rate:     {rate:,.0f} placements/s (goal >= 10,000: "
            f"{'MET' if rate >= 10_000 else 'NOT MET'})"
        )
        say(
            f"memory:   {now:.0f} MiB RSS now, {peak:.0f} MiB peak (goal <= 1536 MiB: "
            f"{'MET' if peak <= 1536 else 'NOT MET'})"
        )
        say(
            f"RESULTS: | schedule_pg | {args.n:,} queued / {args.queues} queues / "
            f"{args.workers} workers | {rate:,.0f} placements/s, peak RSS {peak:.0f} MiB | "
            f"{m.short()}, {db.version} |"
        )
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
