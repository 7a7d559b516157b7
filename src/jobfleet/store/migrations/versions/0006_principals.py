"""principals and grants: tokens belong to principals with per-queue verbs

Each existing token becomes a token of the principal named like it (one principal per distinct
name; admin if any of its tokens was). `tokens.admin` moves to `principals.admin`.

Revision ID: 0006_principals
Revises: 0005_outbox_retention
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0006_principals"
down_revision = "0005_outbox_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "grants",
        sa.Column("principal_id", sa.String(length=32), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("verb", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("principal_id", "queue", "verb"),
    )
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("principal_id", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("prefix", sa.String(length=16), server_default="", nullable=False)
        )
    _give_tokens_principals()
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("principal_id", existing_type=sa.String(length=32), nullable=False)
        batch.drop_column("admin")
        batch.create_index("ix_tokens_principal", ["principal_id"])


def _give_tokens_principals() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, name, admin FROM tokens ORDER BY created_at")).all()
    by_name: dict[str, tuple[str, bool]] = {}
    for token_id, name, admin in rows:
        first, was_admin = by_name.get(name, (token_id, False))
        by_name[name] = (first, was_admin or bool(admin))
    now = time.time()
    for name, (pid, admin) in by_name.items():
        conn.execute(
            sa.text(
                "INSERT INTO principals (id, name, kind, admin, created_at) "
                "VALUES (:id, :name, 'user', :admin, :now)"
            ),
            {"id": pid, "name": name, "admin": admin, "now": now},
        )
        conn.execute(
            sa.text("UPDATE tokens SET principal_id = :id WHERE name = :name"),
            {"id": pid, "name": name},
        )


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(
            sa.Column("admin", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.execute(
        "UPDATE tokens SET admin = (SELECT p.admin FROM principals p "
        "WHERE p.id = tokens.principal_id)"
    )
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_principal")
        batch.drop_column("prefix")
        batch.drop_column("principal_id")
    op.drop_table("grants")
    op.drop_table("principals")
