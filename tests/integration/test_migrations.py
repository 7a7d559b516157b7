"""Migrations produce exactly the schema the code declares, on both backends."""

from __future__ import annotations

import sqlalchemy as sa
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


def test_the_partial_indexes_are_partial_in_the_database(store: Store) -> None:
    # compare_metadata does not look at an index's WHERE: check which indexes have one.
    option = f"{store.backend}_where"
    declared = {
        ix.name
        for table in metadata.tables.values()
        for ix in table.indexes
        if ix.dialect_options[store.backend]["where"] is not None
    }
    with store.writer.connect() as conn:
        found = {
            ix["name"]
            for table in metadata.tables
            for ix in sa.inspect(conn).get_indexes(table)
            if ix.get("dialect_options", {}).get(option) is not None
        }
    assert found == declared
    assert {"ix_jobs_lane", "ix_jobs_lane_unclassed", "ix_jobs_gang"} <= set(found)
