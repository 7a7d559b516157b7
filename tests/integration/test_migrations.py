"""Migrations produce exactly the schema the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from jobfleet.store import Store
from jobfleet.store.migrate import current_revision
from jobfleet.store.schema import metadata


def test_migrated_schema_matches_the_declared_one(store: Store) -> None:
    with store.writer.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_upgrade_twice_is_a_no_op(store: Store) -> None:
    rev = current_revision(store.writer)
    store.migrate()
    assert current_revision(store.writer) == rev is not None
