"""jobs (queue, state, seq): the dashboard's queue + state filter pages by seq, and its
per-queue counts by state read the index alone; on PostgreSQL, joint statistics of queue and
state so the planner uses that index

Revision ID: 0008_dashboard_index
Revises: 0007_scheduling
"""

from __future__ import annotations

from alembic import op

revision = "0008_dashboard_index"
down_revision = "0007_scheduling"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_queue_state_seq", "jobs", ["queue", "state", "seq"])
    if op.get_bind().dialect.name == "postgresql":
        # Queue and state are far from independent (a queue may have no FAILED job at all).
        # Without their joint frequencies the planner guesses a few percent match, walks the
        # primary key newest first hoping to fill a page, and reads the whole table when none
        # match; with them it takes the (queue, state, seq) index.
        op.execute(
            "CREATE STATISTICS IF NOT EXISTS jobs_queue_state (mcv) ON queue, state FROM jobs"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS jobs_queue_state")
    op.drop_index("ix_jobs_queue_state_seq", table_name="jobs")
