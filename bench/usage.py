"""GET /v1/usage over N finished runs (default 1,000,000) on PostgreSQL, 30-day window.

Fills N synthetic jobs (store/synthetic.py) and one finished run each, spread over the last
30 days (all inside the window: the worst case), rolls up the hours that are over (once, as
the first query would), then times the usage query by queue and by worker, through the store
and over HTTP from a `jobfleet up` on the same database. Goal (issue 14): <= 500 ms on PostgreSQL.

    .venv/bin/python -m bench.usage [--database postgres|URL] [-n 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bench.common import Server, database, median, say
from jobfleet.store import Store, UsageQuery

GOAL_MS = 500.0
DAY = 86400.0

_RUNS = """
INSERT INTO runs (id, job_id, attempt, state, shard, worker, fencing, lease_expires_at,
                  cpu_milli, memory, gpu, created_at, started_at, finished_at)
SELECT id || '-1', id, 1, CASE WHEN state = 'FAILED' THEN 'FAILED' ELSE 'SUCCEEDED' END,
       'default', worker, seq, 0, cpu_milli, memory, gpu,
       CAST(:t0 AS float8) + seq * :step, CAST(:t0 AS float8) + seq * :step + 1,
       CAST(:t0 AS float8) + seq * :step + 1 + (seq % 600)
  FROM jobs WHERE id LIKE 'SYN%' AND state <> 'RUNNING'
"""


def fill(store: Store, n: int) -> None:
    from jobfleet.store.synthetic import fill_jobs

    t = time.perf_counter()
    fill_jobs(store, n, progress=lambda k: say(f"   jobs: {k:,}") if k % 200_000 == 0 else None)
    step = 29 * DAY / n
    with store.tx() as conn:
        conn.execute(sa.text(_RUNS), {"t0": time.time() - 30 * DAY, "step": step})
    with store.writer.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE runs"))
        total = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar()
    say(f"   filled {total:,} finished runs in {time.perf_counter() - t:.0f} s")


def timed(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgres")
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="jobfleet-bench-") as tmp,
        database(args.database, Path(tmp)) as db,
    ):
        store = Store(db.url)
        store.migrate()
        fill(store, args.n)
        t = time.perf_counter()
        done, before = store.roll_up_usage(), -1.0  # a week per call, as the leader does
        while done != before:
            done, before = store.roll_up_usage(), done
        say(f"   first roll-up of the ended hours: {(time.perf_counter() - t) * 1000:.0f} ms")
        now = time.time()
        for by in ("queue", "worker"):
            q = UsageQuery(now - 30 * DAY, now, by)  # type: ignore[arg-type]
            ms = timed(lambda q=q: store.usage(q), args.runs)
            say(f"   store.usage(group_by={by}, 30 days): median {ms:.0f} ms (goal <= {GOAL_MS})")
        q1 = UsageQuery(now - DAY, now, "queue")
        ms1 = timed(lambda: store.usage(q1), args.runs)
        say(f"   store.usage(group_by=queue, 1 day): median {ms1:.0f} ms")
        store.close()
        with Server(db.url, Path(tmp)) as server:
            server.start()
            with server.client(timeout=60.0) as client:
                for by in ("queue", "worker"):
                    params = {"since": "30d", "group_by": by}

                    def get(params: dict[str, str] = params) -> None:
                        client.get("/v1/usage", params=params).raise_for_status()

                    ms = timed(get, args.runs)
                    say(f"   GET /v1/usage?since=30d&group_by={by}: median {ms:.0f} ms")


if __name__ == "__main__":
    main()
