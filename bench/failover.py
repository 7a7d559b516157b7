"""Scheduler failover: the leading `jobfleet scheduler` is SIGKILLed; how long until the standby
places jobs again.

One `jobfleet server`, two schedulers (one leads, one stands by) and one `jobfleet worker` on a
fresh database. Each run: a probe job proves the leader works; the leader gets SIGKILL; a job is
submitted at once; the figure is the time from the kill to that job's `leased` event (the
server's clock: the new leader routed and placed it). A new standby is started for the next run.
Goal: ≤ 5 s.

    .venv/bin/python -m bench.failover [--database postgres|sqlite|all|URL] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from bench.common import (
    BenchError,
    base_parser,
    database,
    expand_databases,
    goal_note,
    machine,
    main_guard,
    median,
    print_header,
    print_summary,
    runs_text,
    say,
)
from bench.fleetkit import Fleet, wait

GOAL = 5.0  # seconds


def one_run(fleet: Fleet, i: int) -> float:
    leader = wait(fleet.leader, 30, "a leading scheduler")
    probe = fleet.submit("true")
    wait(lambda: fleet.job(probe)["state"] == "SUCCEEDED", 30, "the probe job")
    killed_at = fleet.kill(leader)
    job_id = fleet.submit("true")
    wait(lambda: fleet.event_time(job_id, "leased"), 60, "the standby to place a job")
    took = float(fleet.event_time(job_id, "leased") or 0) - killed_at
    fleet.scheduler(f"sched-{i + 3}")  # the next run's standby
    return took


def bench(args: argparse.Namespace, spec: str) -> list[float]:
    workdir = Path(tempfile.mkdtemp(prefix="jobfleet-bench-failover-"))
    try:
        with database(spec, workdir) as backend:
            say(f"-- backend: {backend.name} ({backend.version})")
            fleet = Fleet(args.jobfleet, backend.url, workdir, args.lease_timeout)
            try:
                fleet.server()
                fleet.scheduler("sched-1")
                wait(fleet.leader, 30, "sched-1 to lead")
                fleet.scheduler("sched-2")
                fleet.worker("w1")
                times = []
                for i in range(args.runs):
                    times.append(one_run(fleet, i))
                    say(f"   run {i + 1}: standby placed a job {times[-1]:.2f} s after the kill")
                return times
            finally:
                fleet.close()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = base_parser("failover", __doc__ or "", "postgres", 1)
    ap.add_argument("--lease-timeout", type=float, default=5.0)
    args = ap.parse_args()
    print_header("scheduler failover", machine(), args)
    failed = 0
    for spec in expand_databases(args.database):
        try:
            times = bench(args, spec)
        except BenchError as exc:
            say(f"   FAILED ({spec}): {exc}")
            failed += 1
            continue
        m = median(times)
        each = runs_text(times, lambda x: f"{x:.2f}")
        note = goal_note(m, GOAL, higher_is_better=False)
        say(f"   median {m:.2f} s (runs {each}); goal ≤ {GOAL:g} s: {note}")
        print_summary(
            f"| failover, leader SIGKILL → standby places a job ({spec}) | "
            f"{m:.2f} s ({runs_text(times, lambda x: f'{x:.2f}')}) | ≤ {GOAL:g} s |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    main_guard(main)
