"""events (job_set, id) and (queue, id): a `/v1/events` feed filtered by job set or queue
reads an index range in id order (the job filter already has (job_id, id)), so its poll never
scans the table, even before PostgreSQL has statistics on it

Revision ID: 0011_event_feeds
Revises: 0010_partial_indexes
"""

from __future__ import annotations

from alembic import op

revision = "0011_event_feeds"
down_revision = "0010_partial_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_job_set", "events", ["job_set", "id"])
    op.create_index("ix_events_queue", "events", ["queue", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_queue", table_name="events")
    op.drop_index("ix_events_job_set", table_name="events")
