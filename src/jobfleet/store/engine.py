"""Engines for SQLite (WAL, one writer at a time) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event


def normalise_url(url: str) -> str:
    """Accept `postgresql://`, `postgres://` and `sqlite:///path`; pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engines(url: str) -> tuple[sa.Engine, sa.Engine]:
    """(writer, reader). On SQLite the writer begins IMMEDIATE so writers queue, never deadlock."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    # No pre-ping (it costs a round trip per checkout); connections are recycled hourly and a
    # dropped one is invalidated by SQLAlchemy on its first error.
    engine = sa.create_engine(url, pool_size=8, max_overflow=16, pool_recycle=3600)
    return engine, engine


def _sqlite_engine(url: str, *, immediate: bool) -> sa.Engine:
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=8
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
