"""runs.outputs: the files a run listed in its spec's `outputs`, found after success

Revision ID: 0004_run_outputs
Revises: 0003_failures
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_run_outputs"
down_revision = "0003_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("outputs", sa.JSON().with_variant(JSONB(), "postgresql")))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("outputs")
