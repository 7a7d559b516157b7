"""jobs (queue, state, seq): the dashboard's queue + state filter pages by seq, and its
per-queue counts by state read the index alone

Revision ID: 0130_dashboard_index
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0130_dashboard_index"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_queue_state_seq", "jobs", ["queue", "state", "seq"])


def downgrade() -> None:
    op.drop_index("ix_jobs_queue_state_seq", table_name="jobs")
