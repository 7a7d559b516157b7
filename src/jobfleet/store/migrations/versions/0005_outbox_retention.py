"""Callbacks and retention: jobs.callback/ttl/expires_at and the callback_outbox table

Revision ID: 0005_outbox_retention
Revises: 0004_run_outputs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_outbox_retention"
down_revision = "0004_run_outputs"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("callback", sa.String(8), nullable=True))
        batch.add_column(sa.Column("ttl", sa.Float(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
    op.create_index("ix_jobs_expires_at", "jobs", ["expires_at"])
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])
    op.create_table(
        "callback_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(32), nullable=True),
        sa.Column("claimed_until", sa.Float(), nullable=True),
        sa.Column("history", JSONType, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_callback_outbox_due", "callback_outbox", ["state", "next_attempt_at"])
    op.create_index("ix_callback_outbox_job", "callback_outbox", ["job_id", "id"])


def downgrade() -> None:
    op.drop_table("callback_outbox")
    op.drop_index("ix_jobs_finished_at", "jobs")
    op.drop_index("ix_jobs_expires_at", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("ttl")
        batch.drop_column("callback")
