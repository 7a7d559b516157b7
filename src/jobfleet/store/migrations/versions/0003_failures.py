"""Failures and retries: jobs.avoid_workers (workers a retry should avoid) and checkpoints

Revision ID: 0003_failures
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_failures"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column(
                "avoid_workers",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
    op.create_table(
        "checkpoints",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(48), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_checkpoints_job", "checkpoints", ["job_id", "id"])
    op.create_index("ux_checkpoints_run", "checkpoints", ["run_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_checkpoints_run", table_name="checkpoints")
    op.drop_index("ix_checkpoints_job", table_name="checkpoints")
    op.drop_table("checkpoints")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("avoid_workers")
