"""What 1,000 schedules (`every: 1m`) cost the leader scheduler, in-process on a store.

The scheduler's housekeeping (about once a second) calls `fire_schedules`: when no tick is
due it is one indexed read (`next_at <= now`); once a minute, when the ticks come, it submits
one job per schedule. Printed: the median cost of a housekeeping call with nothing due, and of
the call that fires all 1,000 ticks. Issue 14's goal: schedules add no more than 5% to the
scheduler's cycle time (a cycle is the housekeeping, routing and placement of ~1 s of work).

    .venv/bin/python -m bench.schedules [--database sqlite|postgres|URL] [-n 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import database, say
from jobfleet.scheduling.periodic import ScheduleSpec
from jobfleet.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("-n", type=int, default=1000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="jobfleet-bench-") as tmp,
        database(args.database, Path(tmp)) as db,
    ):
        store = Store(db.url)
        store.migrate()
        store.ensure_defaults()
        for i in range(args.n):
            spec = {"name": f"s{i}", "every": "1m", "job": {"command": ["true"]}}
            store.create_schedule(ScheduleSpec.model_validate(spec), actor="bench")
        idle = []
        for _ in range(50):
            t = time.perf_counter()
            store.fire_schedules()
            idle.append(time.perf_counter() - t)
        t = time.perf_counter()
        fired = store.fire_schedules(time.time() + 61)
        burst = time.perf_counter() - t
        say(f"{db.version}: {args.n} schedules, every 1m")
        say(f"  housekeeping with nothing due: median {statistics.median(idle) * 1000:.2f} ms")
        say(f"  the minute's ticks: {fired} jobs in {burst * 1000:.0f} ms")
        per_second = (statistics.median(idle) * 59 + burst) / 60
        say(f"  on average: {per_second * 1000:.1f} ms per second of scheduler time")
        store.close()


if __name__ == "__main__":
    main()
