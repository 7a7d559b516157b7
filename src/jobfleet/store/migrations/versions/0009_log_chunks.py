"""log_chunks: run logs shipped by remote workers, kept in the database

Revision ID: 0009_log_chunks
Revises: 0008_dashboard_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_log_chunks"
down_revision = "0008_dashboard_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_chunks",
        sa.Column("run_id", sa.String(48), nullable=False),
        sa.Column("stream", sa.String(8), nullable=False),
        sa.Column("start", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "stream", "start"),
    )
    op.create_index("ix_log_chunks_job", "log_chunks", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_log_chunks_job", table_name="log_chunks")
    op.drop_table("log_chunks")
