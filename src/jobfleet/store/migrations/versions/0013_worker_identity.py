"""workers.identity (a worker's random identity) and tokens.worker_name (a bound worker token)

Revision ID: 0013_worker_identity
Revises: 0011_event_feeds
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_worker_identity"
down_revision = "0011_event_feeds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("identity", sa.String(64), nullable=True))
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("worker_name", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("worker_name")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("identity")
