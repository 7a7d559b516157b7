"""Shared fixtures: a real store on SQLite and on PostgreSQL for every store and API test.

PostgreSQL: `JOBFLEET_TEST_PG_URL` (default postgresql://postgres@127.0.0.1:5432/postgres) names
a server where we may create databases. Each test session creates its own database, migrated
once; tests truncate it. Without a server the PostgreSQL cases skip — except with CI=true,
where a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobfleet.store import Store
from jobfleet.store.engine import normalise_url
from jobfleet.store.schema import metadata

PG_BASE = os.environ.get("JOBFLEET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin_engine() -> sa.Engine:
    return sa.create_engine(normalise_url(PG_BASE), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    name = f"jobfleet_test_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL at {PG_BASE} is not reachable: {exc.orig}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL is required)")
        pytest.skip(message)
    url = sa.make_url(normalise_url(PG_BASE)).set(database=name).render_as_string(False)
    store = Store(url)
    store.migrate()
    store.close()
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def truncate(store: Store) -> None:
    names = [t.name for t in metadata.sorted_tables]
    with store.writer.begin() as conn:
        if store.backend == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY"))
        else:
            for n in names:
                conn.execute(sa.text(f"DELETE FROM {n}"))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on each backend; the PostgreSQL one is emptied before the test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobfleet.db'}"
    url: str = request.getfixturevalue("pg_url")
    s = Store(url)
    truncate(s)
    s.close()
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    s.ensure_defaults()
    yield s
    s.close()
