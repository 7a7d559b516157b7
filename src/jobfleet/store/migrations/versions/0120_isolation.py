"""runs.outputs: the files a run listed in its spec's `outputs`, found after success

Revision ID: 0120_isolation
Revises: 0110_failures
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0120_isolation"
down_revision = "0110_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("outputs", sa.JSON().with_variant(JSONB(), "postgresql")))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("outputs")
