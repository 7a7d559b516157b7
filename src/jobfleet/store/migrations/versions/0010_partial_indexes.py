"""Partial indexes on jobs: a lease rewrites the job's row (SCHEDULED -> LEASED), and every
index the new row belongs to gains an entry. The lanes, the pending jobs, the gangs and the
retention times are indexed only for the rows that their queries look for; jobs of no priority
class get a lane index of their own (an `IS NULL` key gives no ordered range on PostgreSQL, so
the head of such a lane was a sort of the whole lane).

Revision ID: 0010_partial_indexes
Revises: 0009_log_chunks
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010_partial_indexes"
down_revision = "0009_log_chunks"
branch_labels = None
depends_on = None

LANE = "state = 'SCHEDULED' AND priority_class IS NOT NULL"
UNCLASSED = "state = 'SCHEDULED' AND priority_class IS NULL"
PENDING = "state IN ('WAITING', 'QUEUED', 'SCHEDULED')"


def _both(predicate: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(predicate), "postgresql_where": sa.text(predicate)}


def _rebuild(name: str, columns: list[str], **where: Any) -> None:
    op.drop_index(name, table_name="jobs")
    op.create_index(name, "jobs", columns, **where)


def upgrade() -> None:
    _rebuild(
        "ix_jobs_lane", ["shard", "queue", "priority_class", "neg_priority", "seq"], **_both(LANE)
    )
    op.create_index(
        "ix_jobs_lane_unclassed",
        "jobs",
        ["shard", "queue", "neg_priority", "seq"],
        **_both(UNCLASSED),
    )
    _rebuild(
        "ix_jobs_pending",
        ["state", "shard", "priority", "seq"],
        postgresql_where=sa.text(PENDING),  # SQLite cannot match `state = 'X'` to an IN list
    )
    _rebuild("ix_jobs_expires_at", ["expires_at"], **_both("expires_at IS NOT NULL"))
    _rebuild("ix_jobs_finished_at", ["finished_at"], **_both("finished_at IS NOT NULL"))
    _rebuild("ix_jobs_gang", ["gang_id", "state"], **_both("gang_id IS NOT NULL"))


def downgrade() -> None:
    _rebuild("ix_jobs_gang", ["gang_id", "state"])
    _rebuild("ix_jobs_finished_at", ["finished_at"])
    _rebuild("ix_jobs_expires_at", ["expires_at"])
    _rebuild("ix_jobs_pending", ["state", "shard", "priority", "seq"])
    op.drop_index("ix_jobs_lane_unclassed", table_name="jobs")
    _rebuild("ix_jobs_lane", ["state", "shard", "queue", "priority_class", "neg_priority", "seq"])
