"""Leader election through the database: one active scheduler, standbys wait (PRODUCT.md §7).

The claim is held by a live process: on PostgreSQL a session advisory lock on a dedicated
connection (`pg_try_advisory_lock`), released by the server the moment the connection dies; on
SQLite (one machine) an exclusive `flock` on a file beside the database, released by the kernel
the moment the process dies. The leader re-checks its claim before each cycle.

A claim alone cannot stop a leader that has not noticed yet that it lost it (its connection was
cut, the lock already went to a standby). So each new leader also bumps an *epoch* (a row of the
`counters` table), and while it leads, every write transaction of its store first reads the
epoch row with a share lock (`FOR SHARE`) and checks it is still its own (`Store.fence`). The
bump waits for those share locks, and a fence read waiting on the bump sees the new epoch, so
once the new leader has bumped the epoch no write of the old one can commit: two leaders never
act at once, even for the length of one cycle.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from jobfleet.errors import NotLeader
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import counters

log = logging.getLogger("jobfleet.leader")
LEADER_LOCK = 728132003  # the advisory lock key of the scheduler role (PostgreSQL)


class Claim(Protocol):
    def try_acquire(self) -> bool: ...

    def held(self) -> bool: ...

    def release(self) -> None: ...


class PgClaim:
    """A session advisory lock on a connection of its own (not from the pool)."""

    def __init__(self, url: str, key: int = LEADER_LOCK) -> None:
        self.key = key
        self.engine = sa.create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "connect_timeout": 3,
                "options": "-c statement_timeout=3000",
                "keepalives": 1,
                "keepalives_idle": 2,
                "keepalives_interval": 1,
                "keepalives_count": 2,
                "application_name": "jobfleet-scheduler-leader",
            },
        )
        self.conn: sa.Connection | None = None

    def try_acquire(self) -> bool:
        try:
            if self.conn is None:
                self.conn = self.engine.connect()
            got = self.conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            return bool(got.scalar())
        except sa.exc.DBAPIError as exc:
            log.warning("leader election: database unreachable (%s)", type(exc.orig).__name__)
            self._drop()
            return False

    def held(self) -> bool:
        """Is the lock still ours? A broken connection means it is not (the server drops it)."""
        if self.conn is None:
            return False
        try:
            return bool(
                self.conn.execute(
                    sa.text(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid() AND classid = 0 AND objid = :k "
                        "AND objsubid = 1 AND granted)"
                    ),
                    {"k": self.key},
                ).scalar()
            )
        except sa.exc.DBAPIError:
            self._drop()
            return False

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self.conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        self._drop()
        self.engine.dispose()

    def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.invalidate()
                self.conn.close()
        self.conn = None


class FileClaim:
    """An exclusive flock on a file (SQLite: every process is on this machine)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        if self.fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor releases the flock
            self.fd = None


def claim_for(store: StoreBase, role: str) -> Claim:
    if store.backend == "postgresql":
        return PgClaim(store.url)
    path = sa.make_url(store.url).database
    if not path or path == ":memory:":
        raise ValueError("leader election on SQLite needs a database file")
    return FileClaim(Path(f"{path}.{role}.lock"))


class Leadership:
    """Whether this process leads `role`; `ensure()` before each cycle, `release()` at exit.

    While it leads, `store.fence` refuses any write once another leader has taken over; after
    it lost the lead the fence refuses every write until it leads again.
    """

    def __init__(self, store: StoreBase, role: str = "scheduler", claim: Claim | None = None):
        self.store = store
        self.role = role
        self.claim = claim or claim_for(store, role)
        self.epoch: int | None = None
        store.fence = self._fence

    @property
    def leading(self) -> bool:
        return self.epoch is not None

    def ensure(self) -> bool:
        """Take or keep the lead; False: stand by (act on nothing)."""
        if self.epoch is not None:
            if self.claim.held():
                return True
            log.error("lost the %s lead (lock or connection gone): standing by", self.role)
            self.epoch = None
            return False
        if not self.claim.try_acquire():
            return False
        try:
            self.epoch = self._bump()
        except Exception:
            self.claim.release()
            raise
        log.warning("leading the %s role (epoch %d)", self.role, self.epoch)
        return True

    def release(self) -> None:
        self.epoch = None
        self.claim.release()

    def _bump(self) -> int:
        """A new epoch: from now on the old leader's writes fail (the bump waits for those
        under way, which hold the epoch row's share lock)."""
        name = f"leader-epoch:{self.role}"
        with self.store.writer.begin() as conn:
            row = conn.execute(
                counters.update()
                .where(counters.c.name == name)
                .values(value=counters.c.value + 1)
                .returning(counters.c.value)
            ).first()
            if row is not None:
                return int(row[0])
            conn.execute(counters.insert().values(name=name, value=1))
            return 1

    def current_epoch(self, conn: sa.Connection, *, share: bool = False) -> int | None:
        stmt = sa.select(counters.c.value).where(counters.c.name == f"leader-epoch:{self.role}")
        if share:  # held to the end of the transaction: a bump waits for it (PostgreSQL)
            stmt = stmt.with_for_update(read=True)
        value = conn.execute(stmt).scalar()
        return None if value is None else int(value)

    def _fence(self, conn: sa.Connection) -> None:
        mine = self.epoch
        if mine is None or self.current_epoch(conn, share=True) != mine:
            self.epoch = None
            raise NotLeader(f"this process no longer leads the {self.role} role")
