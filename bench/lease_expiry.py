"""Lease expiry: a `jobfleet worker` is SIGKILLed mid-run; how long until its run is LOST and
the job requeued (and running again on another worker).

One `jobfleet server`, one `jobfleet scheduler`, workers of 1 CPU each, `lease_timeout`
(--lease-timeout, 5 s). Each run: a job whose first attempt hangs starts on some worker; that
worker gets SIGKILL; the figures are the time from the kill to the job's `requeued` event
(cause `lease_expired`) and to its `running` event on another worker (both by the server's
clock). A new worker replaces the killed one for the next run. Goal: requeued within
lease_timeout + 2 s.

    .venv/bin/python -m bench.lease_expiry [--database postgres|sqlite|all|URL] [--runs 3]
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

HANGS = 'echo $$ > {pids}/"$JOBFLEET_RUN_ID".pid; if [ "$JOBFLEET_ATTEMPT" = 1 ]; then sleep 60; fi'


def one_run(fleet: Fleet, i: int) -> tuple[float, float]:
    job_id = fleet.submit(HANGS.format(pids=fleet.workdir / "pids"))
    job = wait(lambda: (j := fleet.job(job_id))["state"] == "RUNNING" and j, 30, "RUNNING")
    victim = job["runs"][-1]["worker"]
    killed_at = fleet.kill(victim)
    wait(lambda: fleet.event_time(job_id, "requeued"), 60, "the run to be LOST and requeued")
    wait(lambda: fleet.job(job_id)["state"] == "SUCCEEDED", 60, "the rerun to succeed")
    requeued = float(fleet.event_time(job_id, "requeued") or 0) - killed_at
    rerun = float(fleet.event_time(job_id, "running") or 0) - killed_at
    fleet.worker(f"w{i + 3}", cpu="1")
    return requeued, rerun


def bench(args: argparse.Namespace, spec: str) -> list[tuple[float, float]]:
    workdir = Path(tempfile.mkdtemp(prefix="jobfleet-bench-lease-"))
    (workdir / "pids").mkdir()
    try:
        with database(spec, workdir) as backend:
            lt = args.lease_timeout
            say(f"-- backend: {backend.name} ({backend.version}), lease_timeout {lt:g} s")
            fleet = Fleet(args.jobfleet, backend.url, workdir, args.lease_timeout)
            try:
                fleet.server()
                fleet.scheduler("sched-1")
                fleet.worker("w1", cpu="1")
                fleet.worker("w2", cpu="1")
                out = []
                for i in range(args.runs):
                    out.append(one_run(fleet, i))
                    say(
                        f"   run {i + 1}: requeued {out[-1][0]:.2f} s, running again "
                        f"{out[-1][1]:.2f} s after the kill"
                    )
                return out
            finally:
                fleet.close()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = base_parser("lease_expiry", __doc__ or "", "postgres", 1)
    ap.add_argument("--lease-timeout", type=float, default=5.0)
    args = ap.parse_args()
    print_header("lease expiry", machine(), args)
    goal = args.lease_timeout + 2
    failed = 0
    for spec in expand_databases(args.database):
        try:
            pairs = bench(args, spec)
        except BenchError as exc:
            say(f"   FAILED ({spec}): {exc}")
            failed += 1
            continue
        req = [p[0] for p in pairs]
        run = [p[1] for p in pairs]
        fmt = lambda x: f"{x:.2f}"  # noqa: E731
        say(
            f"   requeued: median {median(req):.2f} s ({runs_text(req, fmt)}); goal ≤ {goal:g} s: "
            f"{goal_note(median(req), goal, higher_is_better=False)}"
        )
        say(f"   running again elsewhere: median {median(run):.2f} s ({runs_text(run, fmt)})")
        print_summary(
            f"| lease expiry, worker SIGKILL → LOST + requeued / running again ({spec}, "
            f"lease_timeout {args.lease_timeout:g} s) | {median(req):.2f} s / {median(run):.2f} s "
            f"| ≤ {goal:g} s |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    main_guard(main)
