"""The schema, declared once. Alembic migrations must produce exactly this (a test checks).

Where a job is: `jobs.state` with `jobs.shard`. A QUEUED job (shard NULL) is in the intake
queue; a SCHEDULED job is in its shard's queue; a LEASED/RUNNING job is on a worker. Because the
location is one row, moving a job from the intake to a shard is one guarded UPDATE in one
transaction: the job is in exactly one place, never zero and never two (seed 004).

Times are float seconds since the epoch (UTC) on both backends.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from jobfleet.lifecycle import JobState

metadata = sa.MetaData()

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SCHEDULED = JobState.SCHEDULED.value  # a job in its shard's queue


def _where(predicate: str) -> dict[str, Any]:
    """A partial index's predicate, the same on both backends. A query uses the index only if
    its WHERE implies the predicate with literal values (see `store.base.in_state`)."""
    return {"sqlite_where": sa.text(predicate), "postgresql_where": sa.text(predicate)}


jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("job_set", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("priority", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("priority_class", sa.String(64)),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("counted_retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("preempt_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("shard", sa.String(64)),
    sa.Column("worker", sa.String(128)),
    sa.Column("run_id", sa.String(48)),
    sa.Column("cpu_milli", sa.Integer, nullable=False),
    sa.Column("memory", sa.BigInteger, nullable=False),
    sa.Column("gpu", sa.Integer, nullable=False, server_default="0"),
    sa.Column("spec", JSONType, nullable=False),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("search", sa.Text, nullable=False, server_default=""),
    sa.Column("client_id", sa.String(256)),
    sa.Column("retry_of", sa.String(32)),
    sa.Column("failure", JSONType),
    sa.Column("scheduling_reason", sa.Text),
    sa.Column("not_before", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("avoid_workers", JSONType),  # workers a retry should avoid (retry rule avoid_worker)
    # Callbacks and retention (migration 0005): which events the job's callback_url receives
    # (NULL: no callback), the job's own ttl_after_finished, and finished_at + ttl.
    sa.Column("callback", sa.String(8)),
    sa.Column("ttl", sa.Float),
    sa.Column("expires_at", sa.Float),
    sa.Column("gang_id", sa.String(128)),  # migration 0007
    sa.Column("gang_size", sa.Integer),
    sa.Column("neg_priority", sa.BigInteger, nullable=False, server_default="0"),
    # Migration 0014: the array a job belongs to and its index, the schedule and tick that
    # submitted it, and the principal that submitted it (usage by principal).
    sa.Column("array_id", sa.String(32)),
    sa.Column("array_index", sa.Integer),
    sa.Column("schedule", sa.String(64)),
    sa.Column("scheduled_for", sa.Float),
    sa.Column("principal", sa.String(128)),
    sa.Index("ix_jobs_queue_seq", "queue", "seq"),
    sa.Index("ix_jobs_job_set", "queue", "job_set", "seq"),
    sa.Index("ix_jobs_state_seq", "state", "seq"),
    sa.Index("ix_jobs_queue_state_seq", "queue", "state", "seq"),  # dashboard filters, counts
    # Partial indexes (migration 0010) hold only the rows their queries look for, so a lease
    # (SCHEDULED -> LEASED), which rewrites the row, adds no entry to them.
    sa.Index(
        "ix_jobs_pending",
        "state",
        "shard",
        "priority",
        "seq",
        postgresql_where=sa.text("state IN ('WAITING', 'QUEUED', 'SCHEDULED')"),
    ),
    sa.Index("ix_jobs_worker", "worker", "state"),
    sa.Index("ix_jobs_expires_at", "expires_at", **_where("expires_at IS NOT NULL")),
    sa.Index("ix_jobs_finished_at", "finished_at", **_where("finished_at IS NOT NULL")),
    # A lane (one queue, one priority class) in placement order: its head is an index range.
    # `neg_priority` (= -priority) lets one ascending index, the same on both backends, give
    # the placement order (priority DESC, seq ASC). Jobs of no class have their own index: an
    # `IS NULL` key does not give an ordered range on PostgreSQL.
    sa.Index(
        "ix_jobs_lane",
        "shard",
        "queue",
        "priority_class",
        "neg_priority",
        "seq",
        **_where(f"state = '{SCHEDULED}' AND priority_class IS NOT NULL"),
    ),
    sa.Index(
        "ix_jobs_lane_unclassed",
        "shard",
        "queue",
        "neg_priority",
        "seq",
        **_where(f"state = '{SCHEDULED}' AND priority_class IS NULL"),
    ),
    sa.Index("ix_jobs_gang", "gang_id", "state", **_where("gang_id IS NOT NULL")),
    sa.Index("ix_jobs_array", "array_id", "state", **_where("array_id IS NOT NULL")),
    # One job per schedule and tick, whichever scheduler fires it first (§14.2).
    sa.Index(
        "ux_jobs_schedule_tick",
        "schedule",
        "scheduled_for",
        unique=True,
        **_where("schedule IS NOT NULL"),
    ),
    sa.Index(
        "ux_jobs_client_id",
        "queue",
        "client_id",
        unique=True,
        sqlite_where=sa.text("client_id IS NOT NULL"),
        postgresql_where=sa.text("client_id IS NOT NULL"),
    ),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("job_id", sa.String(32), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("shard", sa.String(64), nullable=False),
    sa.Column("worker", sa.String(128), nullable=False),
    sa.Column("fencing", sa.BigInteger, nullable=False),
    sa.Column("lease_expires_at", sa.Float, nullable=False),
    sa.Column("cpu_milli", sa.Integer, nullable=False),
    sa.Column("memory", sa.BigInteger, nullable=False),
    sa.Column("gpu", sa.Integer, nullable=False, server_default="0"),
    sa.Column("exit_code", sa.Integer),
    sa.Column("signal", sa.Integer),
    sa.Column("failure", JSONType),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("outputs", JSONType),  # [{"path", "size"}] of the spec's `outputs` after success
    sa.Index("ix_runs_job", "job_id", "attempt"),
    sa.Index("ix_runs_worker_state", "worker", "state"),
    # Usage over a window (migration 0014): runs that ended after its start, or still run.
    sa.Index("ix_runs_window", "finished_at", "started_at"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("job_id", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(48)),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("job_set", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("payload", JSONType),
    sa.Index("ix_events_job", "job_id", "id"),
    # The filtered feeds (migration 0011): an index range in id order per job set, per queue.
    sa.Index("ix_events_job_set", "job_set", "id"),
    sa.Index("ix_events_queue", "queue", "id"),
)

queues = sa.Table(
    "queues",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("weight", sa.Float, nullable=False, server_default="1"),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

shards = sa.Table(
    "shards",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("shard", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("incarnation", sa.String(32), nullable=False),
    sa.Column("cpu_milli", sa.Integer, nullable=False),
    sa.Column("memory", sa.BigInteger, nullable=False),
    sa.Column("gpu", sa.Integer, nullable=False, server_default="0"),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("info", JSONType, nullable=False),
    sa.Column("last_heartbeat", sa.Float, nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),
    # The random identity the worker keeps in its data dir (datadir.identity): a live worker's
    # name cannot be taken by a process of another identity. NULL: registered without one.
    sa.Column("identity", sa.String(64), nullable=True),
)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),  # user | worker (jobfleet.access.Kind)
    sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("principal_id", sa.String(32), primary_key=True),
    sa.Column("queue", sa.String(64), primary_key=True),  # a queue name, or "*" for every queue
    sa.Column("verb", sa.String(16), primary_key=True),  # jobfleet.access.Verb
)

# A token belongs to a principal; only the sha256 of its secret is kept, with a short prefix
# of the secret so that people can tell their tokens apart in `jobfleet auth list`.
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("principal_id", sa.String(32), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    # A worker token bound to one worker name: it may register and act only as that worker.
    sa.Column("worker_name", sa.String(128), nullable=True),
    sa.Index("ix_tokens_principal", "principal_id"),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

# The latest checkpoint of each run (a write replaces the run's earlier one): JSON text as the job
# wrote it, at most CHECKPOINT_LIMIT bytes. A later attempt of the job gets the newest.
checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(48), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_checkpoints_job", "job_id", "id"),
    sa.Index("ux_checkpoints_run", "run_id", unique=True),
)

# The callback outbox (PRODUCT.md §9): one row per event a job's callback_url must receive,
# written in the transaction that appends the event. `state` is pending, delivered or failed
# (given up); a deliverer claims a due row by setting `claimed_by`/`claimed_until`.
callback_outbox = sa.Table(
    "callback_outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("job_id", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.String(32)),
    sa.Column("claimed_until", sa.Float),
    sa.Column("history", JSONType, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("delivered_at", sa.Float),
    sa.Index("ix_callback_outbox_due", "state", "next_attempt_at"),
    sa.Index("ix_callback_outbox_job", "job_id", "id"),
)

# Logs shipped by remote workers (migration 0009): each run's stdout/stderr as the worker's log
# pump stored them (timestamped lines), in chunks at byte offsets. A chunk re-sent after a lost
# answer has the same key, so it is stored once; `job_id` lets retention delete them with the job.
log_chunks = sa.Table(
    "log_chunks",
    metadata,
    sa.Column("run_id", sa.String(48), primary_key=True),
    sa.Column("stream", sa.String(8), primary_key=True),
    sa.Column("start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("job_id", sa.String(32), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_log_chunks_job", "job_id"),
)

# Job arrays (migration 0014): one submission of `size` jobs sharing a spec (PRODUCT.md §14.1).
arrays = sa.Table(
    "arrays",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("job_set", sa.String(128), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("max_parallel", sa.Integer),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Schedules (migration 0014): a job spec submitted on each tick of a cron or `every` (§14.2).
# `next_at` is the next tick to fire (NULL while paused); the jobs of a tick are unique by
# (schedule, scheduled_for) on `jobs`, so racing schedulers submit one job per tick.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("next_at", sa.Float),
    sa.Column("last_tick", sa.Float),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_schedules_next_at", "next_at"),
)

# Usage rolled up by the hour in which runs ended (migration 0014): what store/usage.py reads
# for the whole hours of a window, instead of every run. An hour is rolled up once it is over
# by `SETTLE` (no run can end in it any more); `min_started` says whether one of its runs
# began before a window's start (then that hour is read from the runs, clipped).
usage_hours = sa.Table(
    "usage_hours",
    metadata,
    sa.Column("hour", sa.Float, primary_key=True),
    sa.Column("queue", sa.String(64), primary_key=True),
    sa.Column("job_set", sa.String(128), primary_key=True),
    sa.Column("principal", sa.String(128), primary_key=True),  # "" when unknown
    sa.Column("worker", sa.String(128), primary_key=True),
    sa.Column("shard", sa.String(64), primary_key=True),
    sa.Column("runs", sa.BigInteger, nullable=False),
    sa.Column("succeeded", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    sa.Column("cpu", sa.Float, nullable=False),  # milli-core seconds
    sa.Column("mem", sa.Float, nullable=False),  # byte seconds
    sa.Column("gpu", sa.Float, nullable=False),
    sa.Column("wall", sa.Float, nullable=False),
    sa.Column("min_started", sa.Float, nullable=False),
)

# Cordoned and draining workers (migration 0014): who asked, and when a drain evicts (§14.4).
# The worker's own state says CORDONED or DRAINING; this row outlives its re-registration.
worker_cordons = sa.Table(
    "worker_cordons",
    metadata,
    sa.Column("worker", sa.String(128), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("evict_at", sa.Float),
    sa.Column("requested_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
