"""Synthetic data for benchmarks and demos: many jobs at once, or one job with a long history.

Not used by jobfleet itself. It lives in store/ because it is SQL. `fill_jobs` writes rows
that look like real ones (every column the reads use, states spread over the lifecycle) with
one INSERT ... SELECT per chunk from generate_series (PostgreSQL), so a million jobs take
seconds, not the hours of going through the API. No event rows are written for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from jobfleet.lifecycle import EventType
from jobfleet.store.base import StoreBase, insert_many
from jobfleet.store.schema import events, jobs, runs

QUEUES = ("default", "ml", "etl", "batch")
TEAMS = ("red", "blue", "green")
# Mostly finished, as in a long-lived fleet (one job in 1,000 still RUNNING, on 8 ghost
# workers); none in a state the scheduler would pick up.
STATES = ("SUCCEEDED",) * 6 + ("FAILED", "CANCELLED")

_FILL = """
INSERT INTO jobs (id, queue, job_set, state, priority, attempt, cpu_milli, memory, gpu, spec,
                  labels, search, worker, created_at, updated_at, finished_at)
SELECT id, queue, job_set, state, i % 10, 1, 1000, 268435456, 0,
       jsonb_build_object('command', jsonb_build_array('echo', i::text),
                          'queue', queue, 'job_set', job_set,
                          'labels', jsonb_build_object('team', team)),
       jsonb_build_object('team', team),
       lower(id || ' ' || job_set || ' echo ' || i || ' ' || team),
       'ghost-' || (i % 8), CAST(:t0 AS float8) + i * 0.001, CAST(:t0 AS float8) + i * 0.001 + 1,
       CASE WHEN state = 'RUNNING' THEN NULL ELSE CAST(:t0 AS float8) + i * 0.001 + 1 END
FROM (
  SELECT i, 'SYN' || lpad(i::text, 23, '0') AS id,
         (CAST(:queues AS text[]))[1 + i % :nq] AS queue, 'set-' || (i / 1000) AS job_set,
         CASE WHEN i % 1000 = 0 THEN 'RUNNING'
              ELSE (CAST(:states AS text[]))[1 + (i * 7) % :ns] END AS state,
         (CAST(:teams AS text[]))[1 + i % :nt] AS team
  FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS i
) AS g
"""


def fill_jobs(
    store: StoreBase,
    n: int,
    *,
    chunk: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Append `n` synthetic jobs (PostgreSQL only), then vacuum and analyze the table."""
    if store.backend != "postgresql":
        raise NotImplementedError("fill_jobs needs PostgreSQL (generate_series)")
    t0 = time.time() - n * 0.001
    base = _max_synthetic(store)
    for start in range(base + 1, base + n + 1, chunk):
        stop = min(start + chunk - 1, base + n)
        params: dict[str, Any] = {
            "t0": t0,
            "start": start,
            "stop": stop,
            "queues": list(QUEUES),
            "nq": len(QUEUES),
            "states": list(STATES),
            "ns": len(STATES),
            "teams": list(TEAMS),
            "nt": len(TEAMS),
        }
        with store.tx() as conn:
            conn.execute(sa.text(_FILL), params)
        if progress is not None:
            progress(stop - base)
    # As autovacuum would leave a settled table: statistics, and a visibility map that lets
    # counts read the index alone.
    with store.writer.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE jobs"))


def _max_synthetic(store: StoreBase) -> int:
    with store.read() as conn:
        top = conn.execute(sa.select(sa.func.max(jobs.c.id)).where(jobs.c.id.like("SYN%"))).scalar()
    return int(str(top)[3:]) if top else 0


_CYCLE = (
    EventType.SCHEDULED,
    EventType.LEASED,
    EventType.RUNNING,
    EventType.REQUEUED,
    EventType.QUEUED,
)


def fill_history(store: StoreBase, job_id: str, n_events: int) -> list[str]:
    """Give an existing job `n_events` more events: attempts that ran and were requeued, each
    with its run row. Returns the run ids, oldest first."""
    with store.read() as conn:
        job = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()._mapping
    now = time.time() - n_events
    evs: list[dict[str, Any]] = []
    run_rows: list[dict[str, Any]] = []
    attempt = int(job["attempt"])
    for i in range(n_events):
        kind = _CYCLE[i % len(_CYCLE)]
        if kind is EventType.LEASED:
            attempt += 1
            run_rows.append(_run(job, attempt, now + i))
        run_id = run_rows[-1]["id"] if run_rows else None
        state = {"requeued": "QUEUED", "queued": "QUEUED"}.get(kind.value, kind.value.upper())
        evs.append(
            {
                "type": kind.value,
                "job_id": job_id,
                "run_id": run_id,
                "queue": job["queue"],
                "job_set": job["job_set"],
                "state": state,
                "attempt": attempt,
                "time": now + i,
                "payload": {"worker": "ghost-0"} if kind is EventType.LEASED else None,
            }
        )
    with store.tx() as conn:
        insert_many(conn, runs, run_rows)
        insert_many(conn, events, evs)
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(attempt=attempt))
    return [r["id"] for r in run_rows]


def _run(job: Any, attempt: int, t: float) -> dict[str, Any]:
    return {
        "id": f"{job['id']}-{attempt}",
        "job_id": job["id"],
        "attempt": attempt,
        "state": "LOST",
        "shard": "default",
        "worker": "ghost-0",
        "fencing": attempt,
        "lease_expires_at": t + 30,
        "cpu_milli": job["cpu_milli"],
        "memory": job["memory"],
        "gpu": job["gpu"],
        "exit_code": None,
        "signal": None,
        "failure": {"condition": "LEASE_EXPIRED", "message": "synthetic", "categories": []},
        "created_at": t,
        "started_at": t + 0.5,
        "finished_at": t + 1,
    }
