"""Second round (PRODUCT.md §14): job arrays, schedules and delayed starts, usage accounting,
cordoned and drained workers.

Revision ID: 0014_arrays_schedules
Revises: 0013_worker_identity
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014_arrays_schedules"
down_revision = "0013_worker_identity"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def _both(predicate: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(predicate), "postgresql_where": sa.text(predicate)}


def upgrade() -> None:
    op.add_column("jobs", sa.Column("array_id", sa.String(32), nullable=True))
    op.add_column("jobs", sa.Column("array_index", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("schedule", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("scheduled_for", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("principal", sa.String(128), nullable=True))
    op.create_index("ix_jobs_array", "jobs", ["array_id", "state"], **_both("array_id IS NOT NULL"))
    op.create_index(
        "ux_jobs_schedule_tick",
        "jobs",
        ["schedule", "scheduled_for"],
        unique=True,
        **_both("schedule IS NOT NULL"),
    )
    op.create_index("ix_runs_window", "runs", ["finished_at", "started_at"])
    op.create_table(
        "arrays",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("job_set", sa.String(128), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("max_parallel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("next_at", sa.Float(), nullable=True),
        sa.Column("last_tick", sa.Float(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_schedules_next_at", "schedules", ["next_at"])
    op.create_table(
        "usage_hours",
        sa.Column("hour", sa.Float(), primary_key=True),
        sa.Column("queue", sa.String(64), primary_key=True),
        sa.Column("job_set", sa.String(128), primary_key=True),
        sa.Column("principal", sa.String(128), primary_key=True),
        sa.Column("worker", sa.String(128), primary_key=True),
        sa.Column("shard", sa.String(64), primary_key=True),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("succeeded", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("mem", sa.Float(), nullable=False),
        sa.Column("gpu", sa.Float(), nullable=False),
        sa.Column("wall", sa.Float(), nullable=False),
        sa.Column("min_started", sa.Float(), nullable=False),
    )
    op.create_table(
        "worker_cordons",
        sa.Column("worker", sa.String(128), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("evict_at", sa.Float(), nullable=True),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("worker_cordons")
    op.drop_table("usage_hours")
    op.drop_index("ix_schedules_next_at", table_name="schedules")
    op.drop_table("schedules")
    op.drop_table("arrays")
    op.drop_index("ix_runs_window", table_name="runs")
    op.drop_index("ux_jobs_schedule_tick", table_name="jobs")
    op.drop_index("ix_jobs_array", table_name="jobs")
    for column in ("principal", "scheduled_for", "schedule", "array_index", "array_id"):
        op.drop_column("jobs", column)
