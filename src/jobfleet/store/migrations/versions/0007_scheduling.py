"""Scheduling: gang columns and neg_priority on jobs; indexes for lanes and gangs

Revision ID: 0007_scheduling
Revises: 0006_principals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_scheduling"
down_revision = "0006_principals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("gang_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("gang_size", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("neg_priority", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute("UPDATE jobs SET neg_priority = -priority")
    op.create_index(
        "ix_jobs_lane",
        "jobs",
        ["state", "shard", "queue", "priority_class", "neg_priority", "seq"],
    )
    op.create_index("ix_jobs_gang", "jobs", ["gang_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_jobs_gang", table_name="jobs")
    op.drop_index("ix_jobs_lane", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("neg_priority")
        batch.drop_column("gang_size")
        batch.drop_column("gang_id")
